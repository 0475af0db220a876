"""stored chat completions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:55:11.897127
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_completions',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('completion', sa.JSON(), nullable=False),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    )
    with op.batch_alter_table('chat_completions', schema=None) as batch_op:
        batch_op.create_index('ix_chat_completions_tenant_seq', ['tenant_id', 'seq'], unique=False)
        batch_op.create_index('ux_chat_completions_tenant_id', ['tenant_id', 'id'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('chat_completions', schema=None) as batch_op:
        batch_op.drop_index('ux_chat_completions_tenant_id')
        batch_op.drop_index('ix_chat_completions_tenant_seq')

    op.drop_table('chat_completions')
