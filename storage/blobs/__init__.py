"""Blob storage: the bytes of files, upload parts and vector indexes.

`BlobStore` is the protocol; `FileSystemBlobStore` (default, under the data dir) and `S3BlobStore`
(MinIO / any S3, through the `minio` client) implement it. One contract suite tests both.
"""
from storage.blobs.base import BlobNotFound, BlobStore, BlobWriter, validate_key
from storage.blobs.fs import FileSystemBlobStore

__all__ = ["BlobNotFound", "BlobStore", "BlobWriter", "FileSystemBlobStore", "validate_key", "open_blob_store"]


def open_blob_store(settings) -> BlobStore:
    """The store the settings ask for: S3 when an endpoint is configured, else the data dir."""
    if settings.s3_endpoint:
        from storage.blobs.s3 import S3BlobStore

        return S3BlobStore(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region or None,
        )
    return FileSystemBlobStore(settings.data_dir / "blobs")
