"""assistants, threads, messages, runs, run steps

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 19:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
ACTIVE_RUN = sa.text("status IN ('queued', 'in_progress', 'requires_action', 'cancelling')")


def _id(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=64), nullable=nullable)


def upgrade() -> None:
    op.create_table('assistants',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _id('id'), _id('tenant_id'),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_assistants_tenant_seq', 'assistants', ['tenant_id', 'seq'], unique=False)
    op.create_table('threads',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _id('id'), _id('tenant_id'),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_table('thread_messages',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _id('id'), _id('thread_id'), _id('tenant_id'), _id('run_id', nullable=True),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_thread_messages_thread_seq', 'thread_messages', ['thread_id', 'seq'], unique=False)
    op.create_table('runs',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _id('id'), _id('thread_id'), _id('tenant_id'), _id('assistant_id'),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_runs_thread_seq', 'runs', ['thread_id', 'seq'], unique=False)
    op.create_index('ix_runs_status_expires', 'runs', ['status', 'expires_at'], unique=False)
    op.create_index('ux_runs_active_thread', 'runs', ['thread_id'], unique=True, sqlite_where=ACTIVE_RUN, postgresql_where=ACTIVE_RUN)
    op.create_table('run_steps',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    _id('id'), _id('run_id'), _id('thread_id'), _id('tenant_id'),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_run_steps_run_seq', 'run_steps', ['run_id', 'seq'], unique=False)
    op.create_index('ix_run_steps_thread_id', 'run_steps', ['thread_id'], unique=False)


def downgrade() -> None:
    for table in ('run_steps', 'runs', 'thread_messages', 'threads', 'assistants'):
        op.drop_table(table)
