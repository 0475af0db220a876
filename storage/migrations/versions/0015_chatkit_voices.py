"""checkpoint permissions, custom voices and voice consents, ChatKit sessions and threads

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 18:45:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _s(n=None):
    return sqlmodel.sql.sqltypes.AutoString(length=n) if n else sqlmodel.sql.sqltypes.AutoString()


def upgrade() -> None:
    op.create_table('checkpoint_permissions',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', _s(64), nullable=False),
    sa.Column('tenant_id', _s(64), nullable=False),
    sa.Column('checkpoint', _s(256), nullable=False),
    sa.Column('project_id', _s(128), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_checkpoint_permissions_tenant_ckpt_seq', 'checkpoint_permissions', ['tenant_id', 'checkpoint', 'seq'])
    op.create_table('voice_consents',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', _s(64), nullable=False),
    sa.Column('tenant_id', _s(64), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('name', _s(256), nullable=False),
    sa.Column('language', _s(64), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.Column('blob_key', _s(512), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_voice_consents_tenant_seq', 'voice_consents', ['tenant_id', 'seq'])
    op.create_table('custom_voices',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', _s(64), nullable=False),
    sa.Column('tenant_id', _s(64), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('name', _s(256), nullable=False),
    sa.Column('consent_id', _s(64), nullable=False),
    sa.Column('pitch', sa.Integer(), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.Column('blob_key', _s(512), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_custom_voices_tenant_seq', 'custom_voices', ['tenant_id', 'seq'])
    op.create_table('chatkit_sessions',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', _s(64), nullable=False),
    sa.Column('tenant_id', _s(64), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.Integer(), nullable=False),
    sa.Column('status', _s(16), nullable=False),
    sa.Column('user', _s(512), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_chatkit_sessions_tenant_seq', 'chatkit_sessions', ['tenant_id', 'seq'])
    op.create_table('chatkit_threads',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', _s(64), nullable=False),
    sa.Column('tenant_id', _s(64), nullable=False),
    sa.Column('user', _s(512), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_chatkit_threads_tenant_seq', 'chatkit_threads', ['tenant_id', 'seq'])
    op.create_table('chatkit_thread_items',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', _s(64), nullable=False),
    sa.Column('tenant_id', _s(64), nullable=False),
    sa.Column('thread_id', _s(64), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    )
    op.create_index('ix_chatkit_thread_items_thread_seq', 'chatkit_thread_items', ['tenant_id', 'thread_id', 'seq'])


def downgrade() -> None:
    op.drop_table('chatkit_thread_items')
    op.drop_table('chatkit_threads')
    op.drop_table('chatkit_sessions')
    op.drop_table('custom_voices')
    op.drop_table('voice_consents')
    op.drop_table('checkpoint_permissions')
