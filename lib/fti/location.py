"""Where a home lives: a local folder or a URI on object storage, behind one path abstraction.

A home is a local path (or ``file:`` URI), ``s3a://bucket/prefix``, ``gs://bucket/prefix``,
``abfss://container@account.dfs.core.windows.net/prefix`` or ``dbfs:/prefix``. Every table path, manifest,
report and staging file of fti goes through :class:`Location`:

- Spark reads and writes :attr:`Location.uri` (Hadoop's file systems: S3A, GCS, ABFS, DBFS);
- ``deltalake`` opens :attr:`Location.delta_uri` with :meth:`Location.storage_options`;
- fti's own small files (manifests, reports, the staged files of the delta-rs bridge, the log reader's
  commit files) use the methods here: local ones with :mod:`pathlib`, object stores with :mod:`pyarrow.fs`.

``dbfs:/x`` is the Databricks file system: Spark gets ``dbfs:/x``, everything else its FUSE mount ``/dbfs/x``.

The object stores' endpoint and credentials come from the standard environment (for S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, and ``AWS_ENDPOINT_URL`` for an S3-compatible server such as MinIO),
read the same way by Spark's S3A (:func:`spark_hadoop_conf`), ``deltalake`` and ``pyarrow``.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Sequence
from urllib.parse import urlparse

from fti.errors import ConfigError

OBJECT_SCHEMES = ("s3a", "gs", "abfss")
DBFS_MOUNT = Path("/dbfs")


def is_uri(value: str) -> bool:
    """Whether a home value names a URI (``s3a://``, ``file:``, ``dbfs:/``...) rather than a local path."""
    scheme = urlparse(value).scheme
    return len(scheme) > 1  # a Windows drive letter is not a scheme


class Location:
    """A file or folder: local, on DBFS, or on an object store (``s3a``, ``gs``, ``abfss``).

    Args:
        value: A local path, or a ``file:``, ``s3a://``, ``gs://``, ``abfss://`` or ``dbfs:/`` URI.

    Raises:
        ConfigError: An unsupported scheme (``s3://``, ``hdfs://``...), with the accepted ones.
    """

    def __init__(self, value: str | os.PathLike[str] | Location) -> None:
        if isinstance(value, Location):
            self.scheme, self.netloc, self.key, self.local = value.scheme, value.netloc, value.key, value.local
            return
        text = os.fspath(value)
        self.scheme, self.netloc, self.key = "", "", ""
        self.local: Path | None = None
        if not is_uri(text):
            self.local = Path(text).expanduser()
            return
        parsed = urlparse(text)
        scheme = parsed.scheme.lower()
        if scheme == "file":
            self.local = Path(parsed.path)
        elif scheme == "dbfs":
            self.scheme, self.key = "dbfs", parsed.path.strip("/")
            self.local = DBFS_MOUNT / self.key
        elif scheme in OBJECT_SCHEMES:
            if not parsed.netloc:
                raise ConfigError(f"home {text!r} names no bucket or container", hint=f"use {scheme}://BUCKET/PREFIX")
            self.scheme, self.netloc, self.key = scheme, parsed.netloc, parsed.path.strip("/")
        else:
            hint = "use s3a://BUCKET/PREFIX (Hadoop's S3A)" if scheme in ("s3", "s3n") else \
                "use a local path, file:, s3a://, gs://, abfss:// or dbfs:/"
            raise ConfigError(f"home {text!r}: the scheme {scheme}:// is not supported", hint=hint)

    # ----------------------------------------------------------------------------- naming
    @property
    def is_local(self) -> bool:
        """A plain local folder (POSIX locks, the embedded MLflow store): not DBFS, not an object store."""
        return self.local is not None and self.scheme == ""

    @property
    def is_object_store(self) -> bool:
        return self.scheme in OBJECT_SCHEMES

    def _child(self, key: str, local: Path | None) -> Location:
        out = Location.__new__(Location)
        out.scheme, out.netloc, out.key, out.local = self.scheme, self.netloc, key, local
        return out

    def __truediv__(self, part: str | os.PathLike[str]) -> Location:
        rel = os.fspath(part).strip("/")
        key = posixpath.normpath(posixpath.join(self.key, rel)) if rel else self.key
        return self._child("" if key == "." else key, None if self.local is None else self.local / rel)

    @property
    def name(self) -> str:
        return self.local.name if self.local is not None else posixpath.basename(self.key)

    @property
    def parent(self) -> Location:
        return self._child(posixpath.dirname(self.key), None if self.local is None else self.local.parent)

    def resolve(self) -> Location:
        if self.is_local:
            return Location(self.local.resolve())  # type: ignore[union-attr]
        return self

    @property
    def uri(self) -> str:
        """What Spark reads and writes: an absolute local path, ``dbfs:/...`` or ``s3a://bucket/...``."""
        if self.is_local:
            return str(self.local)
        if self.scheme == "dbfs":
            return f"dbfs:/{self.key}"
        return f"{self.scheme}://{self.netloc}/{self.key}".rstrip("/")

    @property
    def delta_uri(self) -> str:
        """What ``deltalake`` opens: a local path (DBFS through its mount) or the object-store URI."""
        return str(self.local) if self.local is not None else self.uri

    def as_uri(self) -> str:
        return self.local.as_uri() if self.is_local else self.uri  # type: ignore[union-attr]

    def relative_to(self, other: Location) -> str:
        """This location's path below ``other`` (posix), e.g. ``flights/carrier_delay``."""
        if self.local is not None and other.local is not None:
            return self.local.relative_to(other.local).as_posix()
        if (self.scheme, self.netloc) != (other.scheme, other.netloc) or \
                not (other.key == "" or self.key == other.key or self.key.startswith(other.key + "/")):
            raise ValueError(f"{self.uri} is not under {other.uri}")
        return self.key[len(other.key):].lstrip("/")

    def is_under(self, other: Location) -> bool:
        try:
            rel = self.relative_to(other)
        except ValueError:
            return False
        return bool(rel) and not rel.startswith("..")

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __fspath__(self) -> str:
        if self.local is None:
            raise TypeError(f"{self.uri} is on object storage, not a local path")
        return str(self.local)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, os.PathLike)) and not isinstance(other, Location):
            other = Location(other)
        if not isinstance(other, Location):
            return NotImplemented
        return self.uri == other.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    # ----------------------------------------------------------------------------- storage configuration
    def storage_options(self) -> dict[str, str]:
        """``deltalake`` storage options for this location (empty for local paths)."""
        if self.scheme == "s3a":
            endpoint = s3_endpoint()
            opts = {"AWS_REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
            if endpoint:
                opts["AWS_ENDPOINT_URL"] = endpoint
                opts["AWS_ALLOW_HTTP"] = str(endpoint.startswith("http://")).lower()
            return opts
        return {}

    def _fs(self) -> tuple[Any, str]:
        """The pyarrow file system of an object-store location, and the path in it."""
        import pyarrow.fs as pafs

        if self.scheme == "s3a":
            endpoint = s3_endpoint()
            kwargs: dict[str, Any] = {"region": self.storage_options()["AWS_REGION"]}
            if endpoint:
                parsed = urlparse(endpoint)
                kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https",
                              force_virtual_addressing=False)
            fs = _cached_fs(("s3", tuple(sorted(kwargs.items()))), lambda: pafs.S3FileSystem(**kwargs))
            return fs, f"{self.netloc}/{self.key}".rstrip("/")
        if self.scheme == "gs":
            return _cached_fs(("gs",), pafs.GcsFileSystem), f"{self.netloc}/{self.key}".rstrip("/")
        if self.scheme == "abfss":
            container, _, host = self.netloc.partition("@")
            account = host.split(".", 1)[0]
            fs = _cached_fs(("abfs", account), lambda: pafs.AzureFileSystem(account_name=account))
            return fs, f"{container}/{self.key}".rstrip("/")
        raise TypeError(f"{self.uri} is a local path")

    # ----------------------------------------------------------------------------- file operations
    def _info(self) -> Any:
        fs, path = self._fs()
        return fs.get_file_info(path)

    def exists(self) -> bool:
        if self.local is not None:
            return self.local.exists()
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        if self.local is not None:
            return self.local.is_file()
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        """A folder (on an object store: a prefix that holds objects)."""
        if self.local is not None:
            return self.local.is_dir()
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        """Create the folder (object stores have no folders: nothing to do)."""
        if self.local is not None:
            self.local.mkdir(parents=parents, exist_ok=exist_ok)

    def read_bytes(self) -> bytes:
        if self.local is not None:
            return self.local.read_bytes()
        fs, path = self._fs()
        with fs.open_input_stream(path) as handle:  # a missing object raises FileNotFoundError, as locally
            return handle.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def write_bytes(self, data: bytes) -> None:
        """Write whole: readers see the old content or the new, never a part (a temporary file and a rename
        locally; one PUT on an object store)."""
        if self.local is not None:
            self.local.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.local.parent, prefix=f".{self.local.name}.", delete=False) as tmp:
                tmp.write(data)
            os.replace(tmp.name, self.local)
            return
        fs, path = self._fs()
        with fs.open_output_stream(path) as handle:
            handle.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def unlink(self, missing_ok: bool = True) -> None:
        if self.local is not None:
            self.local.unlink(missing_ok=missing_ok)
            return
        fs, path = self._fs()
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmtree(self) -> None:
        """Delete the folder and everything under it (nothing happens when it is missing)."""
        if self.local is not None:
            import shutil

            shutil.rmtree(self.local, ignore_errors=True)
            return
        fs, path = self._fs()
        try:
            fs.delete_dir(path)
        except FileNotFoundError:
            pass

    def move_to(self, target: Location) -> None:
        """Move a file (a rename locally; a copy then a delete on an object store)."""
        if self.local is not None and target.local is not None:
            os.replace(self.local, target.local)
            return
        fs, path = self._fs()
        fs.move(path, target._fs()[1])

    def size(self) -> int:
        return self.local.stat().st_size if self.local is not None else int(self._info().size)

    def mtime_ms(self) -> int:
        if self.local is not None:
            return int(self.local.stat().st_mtime * 1000)
        mtime = self._info().mtime
        return int(mtime.timestamp() * 1000) if mtime is not None else 0

    def iterdir(self) -> list[Location]:
        """The entries right under this folder (none when it is missing)."""
        if self.local is not None:
            return [self / p.name for p in self.local.iterdir()] if self.local.is_dir() else []
        import pyarrow.fs as pafs

        fs, path = self._fs()
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return [self / posixpath.basename(i.path) for i in infos]

    def walk(self) -> Iterator[tuple[str, bool]]:
        """Every entry below this folder as ``(relative posix path, is_dir)``."""
        if self.local is not None:
            if not self.local.is_dir():
                return
            for dirpath, dirnames, filenames in os.walk(self.local):
                rel = Path(dirpath).relative_to(self.local)
                for d in dirnames:
                    yield (rel / d).as_posix(), True
                for f in filenames:
                    yield (rel / f).as_posix(), False
            return
        import pyarrow.fs as pafs

        fs, path = self._fs()
        for info in fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True)):
            yield info.path[len(path):].lstrip("/"), info.type == pafs.FileType.Directory

    def parquet_metadata(self) -> Any:
        """The footer of a parquet file."""
        import pyarrow.parquet as pq

        if self.local is not None:
            return pq.read_metadata(self.local)
        fs, path = self._fs()
        with fs.open_input_file(path) as handle:
            return pq.read_metadata(handle)


_FILE_SYSTEMS: dict[tuple, Any] = {}


def _cached_fs(key: tuple, make: Any) -> Any:
    if key not in _FILE_SYSTEMS:
        _FILE_SYSTEMS[key] = make()
    return _FILE_SYSTEMS[key]


def s3_endpoint() -> str | None:
    """An S3-compatible server's endpoint (``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``), or None for AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def spark_hadoop_conf(location: Location) -> dict[str, str]:
    """Hadoop settings (without the ``spark.hadoop.`` prefix) that give Spark's S3A the home bucket's endpoint and
    credentials from this process's environment, as ``deltalake`` and ``pyarrow`` read them. They are per bucket
    (``fs.s3a.bucket.<bucket>.*``): other buckets keep the cluster's settings. Empty for other homes, and for
    AWS with no keys in the environment (instance roles: S3A's default chain finds them). Spark redacts the
    secret in its UI."""
    if location.scheme != "s3a":
        return {}
    out = {}
    endpoint = s3_endpoint()
    if endpoint:
        out.update({
            "endpoint": endpoint,
            "endpoint.region": location.storage_options()["AWS_REGION"],
            "path.style.access": "true",
            "connection.ssl.enabled": str(endpoint.startswith("https://")).lower(),
        })
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        out.update({"access.key": os.environ["AWS_ACCESS_KEY_ID"], "secret.key": os.environ["AWS_SECRET_ACCESS_KEY"]})
        if os.environ.get("AWS_SESSION_TOKEN"):
            out.update({"session.token": os.environ["AWS_SESSION_TOKEN"],
                        "aws.credentials.provider": "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"})
    return {f"fs.s3a.bucket.{location.netloc}.{key}": value for key, value in out.items()}


def parquet_dataset(paths: Sequence[str]) -> Any:
    """A pyarrow dataset over parquet files given as a log reader gives them (local paths or object-store URIs)."""
    import pyarrow.dataset as pds

    if not any(is_uri(p) and not p.startswith("file:") for p in paths):
        return pds.dataset(list(paths), format="parquet")
    locations = [Location(p) for p in paths]
    fs = locations[0]._fs()[0]  # noqa: SLF001 - one table: one file system
    return pds.dataset([loc._fs()[1] for loc in locations], format="parquet", filesystem=fs)  # noqa: SLF001


def relative_posix(path: str, root: Location) -> str:
    """A data file's path (absolute, as a log reader or Spark gives it) relative to its table's root."""
    return Location(path).relative_to(root) if is_uri(path) or root.local is None else \
        PurePosixPath(Path(path).relative_to(root.local)).as_posix()
