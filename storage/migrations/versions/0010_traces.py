"""traces and spans from the Agents SDK's exporter (POST /v1/traces/ingest)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 20:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('traces',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    )
    op.create_index('ix_traces_tenant_id', 'traces', ['tenant_id', 'id'], unique=True)
    op.create_index('ix_traces_tenant_seq', 'traces', ['tenant_id', 'seq'])
    op.create_table('trace_spans',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('trace_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    )
    op.create_index('ix_trace_spans_tenant_id', 'trace_spans', ['tenant_id', 'id'], unique=True)
    op.create_index('ix_trace_spans_tenant_trace_seq', 'trace_spans', ['tenant_id', 'trace_id', 'seq'])
    op.create_index('ix_trace_spans_tenant_seq', 'trace_spans', ['tenant_id', 'seq'])


def downgrade() -> None:
    op.drop_table('trace_spans')
    op.drop_table('traces')
