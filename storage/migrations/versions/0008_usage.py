"""usage records and per-project rate limits

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 23:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _str(name: str, length: int = 64) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=False)


def upgrade() -> None:
    op.create_table('usage_buckets',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('start_time', sa.Integer(), nullable=False),
    _str('kind', 16), _str('project_id'), _str('model', 256), _str('api_key_id'),
    sa.Column('batch', sa.Boolean(), nullable=False),
    *(sa.Column(name, sa.BigInteger(), nullable=False) for name in ('input_tokens', 'output_tokens', 'input_cached_tokens', 'num_model_requests')),
    sa.PrimaryKeyConstraint('seq'),
    )
    op.create_index('ux_usage_buckets_key', 'usage_buckets', ['start_time', 'kind', 'project_id', 'model', 'api_key_id', 'batch'], unique=True)
    op.create_table('project_rate_limits',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _str('project_id'), _str('model', 256),
    sa.Column('max_requests_per_1_minute', sa.Integer(), nullable=False),
    sa.Column('max_tokens_per_1_minute', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    )
    op.create_index('ux_project_rate_limits_project_model', 'project_rate_limits', ['project_id', 'model'], unique=True)


def downgrade() -> None:
    op.drop_table('project_rate_limits')
    op.drop_table('usage_buckets')
