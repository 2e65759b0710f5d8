"""Bytes on disk, safely: atomic files, tensor files, checksums, disk space, checkpoint folders."""
