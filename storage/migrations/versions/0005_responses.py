"""responses, their items, conversations and their items

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 20:15:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _id(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=64), nullable=nullable)


def upgrade() -> None:
    op.create_table('responses',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _id('id'), _id('tenant_id'),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    _id('previous_response_id', nullable=True), _id('conversation_id', nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('request', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_table('response_items',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _id('id'), _id('response_id'), _id('tenant_id'),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    )
    op.create_index('ix_response_items_response_seq', 'response_items', ['response_id', 'seq'], unique=False)
    op.create_table('conversations',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _id('id'), _id('tenant_id'),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_table('conversation_items',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _id('id'), _id('conversation_id'), _id('tenant_id'),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    )
    op.create_index('ix_conversation_items_conversation_seq', 'conversation_items', ['conversation_id', 'seq'], unique=False)
    op.create_index('ux_conversation_items_conversation_id', 'conversation_items', ['conversation_id', 'id'], unique=True)


def downgrade() -> None:
    for table in ('conversation_items', 'conversations', 'response_items', 'responses'):
        op.drop_table(table)
