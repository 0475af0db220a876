"""evals, their runs and the runs' output items (/v1/evals)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 18:45:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _str(name: str, length: int = 64) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=False)


def upgrade() -> None:
    op.create_table('evals',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _str('id'), _str('tenant_id'), sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'), sa.UniqueConstraint('id'),
    )
    op.create_index('ix_evals_tenant_seq', 'evals', ['tenant_id', 'seq'])
    op.create_table('eval_runs',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _str('id'), _str('tenant_id'), _str('eval_id'), sa.Column('created_at', sa.Integer(), nullable=False), _str('status', 24),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'), sa.UniqueConstraint('id'),
    )
    op.create_index('ix_eval_runs_tenant_eval_seq', 'eval_runs', ['tenant_id', 'eval_id', 'seq'])
    op.create_table('eval_output_items',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _str('id'), _str('tenant_id'), _str('run_id'), sa.Column('datasource_item_id', sa.Integer(), nullable=False), _str('status', 16),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'), sa.UniqueConstraint('id'),
    )
    op.create_index('ix_eval_output_items_tenant_run_seq', 'eval_output_items', ['tenant_id', 'run_id', 'seq'])
    op.create_index('ux_eval_output_items_run_item', 'eval_output_items', ['run_id', 'datasource_item_id'], unique=True)


def downgrade() -> None:
    for table in ('eval_output_items', 'eval_runs', 'evals'):
        op.drop_table(table)
