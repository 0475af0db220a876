"""vector stores

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:17:29.421027
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    _tables()
    if op.get_bind().dialect.name == "sqlite":
        op.execute(KEYWORD_INDEX_SQLITE)
    else:
        op.execute(KEYWORD_INDEX_POSTGRES)


def _tables() -> None:
    op.create_table('chunks',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('vector_store_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('file_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tokens', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('chunks', schema=None) as batch_op:
        batch_op.create_index('ix_chunks_store_file', ['vector_store_id', 'file_id'], unique=False)

    op.create_table('vector_store_file_batches',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('vector_store_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('vector_store_file_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vector_store_file_batches_vector_store_id'), ['vector_store_id'], unique=False)

    op.create_table('vector_store_files',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('vector_store_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('last_error', sa.JSON(), nullable=True),
    sa.Column('usage_bytes', sa.BigInteger(), nullable=False),
    sa.Column('chunking_strategy', sa.JSON(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('vector_store_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vector_store_files_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index('ix_vector_store_files_store_seq', ['vector_store_id', 'seq'], unique=False)
        batch_op.create_index('ux_vector_store_files_store_file', ['vector_store_id', 'id'], unique=True)

    op.create_table('vector_stores',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('usage_bytes', sa.BigInteger(), nullable=False),
    sa.Column('last_active_at', sa.Integer(), nullable=True),
    sa.Column('expires_after', sa.JSON(), nullable=True),
    sa.Column('expires_at', sa.Integer(), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('embedding_model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('vector_stores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vector_stores_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index('ix_vector_stores_tenant_seq', ['tenant_id', 'seq'], unique=False)



KEYWORD_INDEX_SQLITE = (
    # External-content FTS5 over chunks.text (bm25 ranking); rows are added and removed with the chunks.
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='seq', tokenize='unicode61')"
)
KEYWORD_INDEX_POSTGRES = "CREATE INDEX ix_chunks_text_fts ON chunks USING GIN (to_tsvector('simple', text))"


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_chunks_text_fts")
    with op.batch_alter_table('vector_stores', schema=None) as batch_op:
        batch_op.drop_index('ix_vector_stores_tenant_seq')
        batch_op.drop_index(batch_op.f('ix_vector_stores_expires_at'))

    op.drop_table('vector_stores')
    with op.batch_alter_table('vector_store_files', schema=None) as batch_op:
        batch_op.drop_index('ux_vector_store_files_store_file')
        batch_op.drop_index('ix_vector_store_files_store_seq')
        batch_op.drop_index(batch_op.f('ix_vector_store_files_batch_id'))

    op.drop_table('vector_store_files')
    with op.batch_alter_table('vector_store_file_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vector_store_file_batches_vector_store_id'))

    op.drop_table('vector_store_file_batches')
    with op.batch_alter_table('chunks', schema=None) as batch_op:
        batch_op.drop_index('ix_chunks_store_file')

    op.drop_table('chunks')
