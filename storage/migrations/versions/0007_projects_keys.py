"""projects, API keys (project and admin)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 23:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _str(name: str, length: int = 64, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table('projects',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _str('id'),
    _str('name', 256),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('archived_at', sa.Integer(), nullable=True),
    _str('external_key_id', 256, nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index(op.f('ix_projects_name'), 'projects', ['name'], unique=False)
    op.create_table('api_keys',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _str('id'),
    _str('kind', 16),
    _str('project_id', nullable=True),
    _str('name', 256, nullable=True),
    _str('key_hash'),
    _str('redacted_value'),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.Integer(), nullable=True),
    sa.Column('last_used_at', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('key_hash'),
    )
    op.create_index('ix_api_keys_kind_project_seq', 'api_keys', ['kind', 'project_id', 'seq'], unique=False)


def downgrade() -> None:
    op.drop_table('api_keys')
    op.drop_index(op.f('ix_projects_name'), table_name='projects')
    op.drop_table('projects')
