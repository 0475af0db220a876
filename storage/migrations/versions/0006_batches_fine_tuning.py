"""batches and their results, fine-tuning jobs, events, checkpoints and fine-tuned models

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 20:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _str(name: str, length: int = 64, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def _objects(table: str, *columns: sa.Column, unique_id: bool = True) -> None:
    op.create_table(table,
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    *columns,
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    *((sa.UniqueConstraint('id'),) if unique_id else ()),
    )


def upgrade() -> None:
    _objects('batches', _str('id'), _str('tenant_id'), sa.Column('created_at', sa.Integer(), nullable=False), _str('status', 16))
    op.create_index('ix_batches_tenant_seq', 'batches', ['tenant_id', 'seq'], unique=False)
    _objects('batch_results', _str('batch_id'), _str('custom_id', 512), sa.Column('line', sa.Integer(), nullable=False),
             sa.Column('ok', sa.Boolean(), nullable=False), unique_id=False)
    op.create_index('ux_batch_results_batch_custom_id', 'batch_results', ['batch_id', 'custom_id'], unique=True)
    _objects('fine_tuning_jobs', _str('id'), _str('tenant_id'), sa.Column('created_at', sa.Integer(), nullable=False), _str('status', 24))
    op.create_index('ix_fine_tuning_jobs_tenant_seq', 'fine_tuning_jobs', ['tenant_id', 'seq'], unique=False)
    for table in ('fine_tuning_events', 'fine_tuning_checkpoints'):
        _objects(table, _str('id'), _str('job_id'), _str('tenant_id'), sa.Column('created_at', sa.Integer(), nullable=False))
        op.create_index(f'ix_{table}_job_seq', table, ['job_id', 'seq'], unique=False)
    _objects('fine_tuned_models', _str('id', 256), _str('tenant_id'), sa.Column('created_at', sa.Integer(), nullable=False), unique_id=False)
    op.create_index('ux_fine_tuned_models_tenant_id', 'fine_tuned_models', ['tenant_id', 'id'], unique=True)


def downgrade() -> None:
    for table in ('fine_tuned_models', 'fine_tuning_checkpoints', 'fine_tuning_events', 'fine_tuning_jobs', 'batch_results', 'batches'):
        op.drop_table(table)
