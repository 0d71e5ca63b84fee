"""Images in chat requests: OpenAI `image_url` content parts -> checked image files for the backend.

    {"role": "user", "content": [{"type": "text", "text": "What colour is the shape?"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0..."}}]}

A `data:` URI (base64) is decoded into a temporary folder that lives while the request is
tokenised (the processor turns the files into pixel tensors then). `file://` URLs and absolute
paths name an image on the server's own disk: only a server bound to loopback takes them (its
clients are this machine's users, who can read the file anyway); off loopback they would let a
remote client have the model describe any image on the server. http(s) URLs are refused: the
server never fetches anything (it is meant to run offline).

Every image is opened and size-checked here (engine/vision/data.py's `check_image`), so a bad one
is a 400 naming its part, e.g. `messages[0].content[1]`, before the model sees anything.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from engine.serve.api_errors import ApiError


@dataclass
class ImageRef:
    """One image part of a request: where it is (for messages) and its URL as sent."""

    where: str  # e.g. messages[0].content[1]
    url: str


def image_data_uri(path: str) -> str:
    """The file at `path` as a data: URI, the way an OpenAI client sends an image inline."""
    data = Path(path).read_bytes()
    mime = mimetypes.guess_type(str(path))[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _scheme(url: str) -> str:
    """The URL's scheme ('' for a plain path; a Windows drive letter is a path, not a scheme)."""
    head, sep, _ = url.partition(":")
    is_scheme = sep and len(head) > 1 and head.replace("+", "").replace("-", "").replace(".", "").isalnum()
    return head.lower() if is_scheme else ""


class RequestImages:
    """The images of one request as checked local files; the decoded ones are deleted on exit."""

    def __init__(self, local_files: bool):
        self.local_files = local_files
        self.folder: Path | None = None
        self.count = 0

    def __enter__(self) -> "RequestImages":
        return self

    def __exit__(self, *exc) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def resolve(self, ref: ImageRef) -> str:
        """A readable, size-checked image file for `ref`; ApiError (400) naming the part otherwise."""
        scheme = _scheme(ref.url)
        reader = URL_READERS.get(scheme)
        if reader is None:
            raise ApiError(400, f"{ref.where}.image_url has a {scheme}: URL; this server takes data: URIs "
                                f"(data:image/png;base64,...) and, on loopback, file:// paths.", "invalid_image_url",
                           f"{ref.where}.image_url")
        path = reader(self, ref)
        return self._checked(path, ref)

    def _checked(self, path: Path, ref: ImageRef) -> str:
        from engine.data.formats import RecordError
        from engine.vision.data import check_image

        try:
            check_image(str(path))
        except RecordError as e:
            decoded = self.folder is not None and path.parent == self.folder
            message = str(e).replace(str(path), ref.where) if decoded else str(e)
            raise ApiError(400, f"{ref.where}: {message}.", "invalid_image", f"{ref.where}.image_url") from None
        return str(path)

    # readers, one per URL scheme ----------------------------------------------------------
    def _from_data_uri(self, ref: ImageRef) -> Path:
        head, sep, payload = ref.url.partition(",")
        if not sep or not head.lower().endswith(";base64"):
            raise ApiError(400, f"{ref.where}.image_url is a data: URI without base64 data; send "
                                f"data:image/png;base64,<the file's bytes in base64>.", "invalid_image_url",
                           f"{ref.where}.image_url")
        try:
            data = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise ApiError(400, f"{ref.where}.image_url holds invalid base64 ({e}); encode the image file's bytes "
                                f"with standard base64.", "invalid_image", f"{ref.where}.image_url") from None
        if not data:
            raise ApiError(400, f"{ref.where}.image_url holds no image data.", "invalid_image", f"{ref.where}.image_url")
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="edgetune-serve-images-"))
        path = self.folder / f"image-{self.count}"
        self.count += 1
        path.write_bytes(data)
        return path

    def _from_file_url(self, ref: ImageRef) -> Path:
        parsed = urllib.parse.urlparse(ref.url)
        if parsed.netloc not in ("", "localhost"):
            raise ApiError(400, f"{ref.where}.image_url names a file on another machine ({parsed.netloc}); "
                                f"send the image inline as a data: URI.", "invalid_image_url", f"{ref.where}.image_url")
        return self._local(Path(urllib.request.url2pathname(parsed.path)), ref)

    def _from_path(self, ref: ImageRef) -> Path:
        return self._local(Path(ref.url).expanduser(), ref)

    def _local(self, path: Path, ref: ImageRef) -> Path:
        if not self.local_files:
            raise ApiError(400, f"{ref.where}.image_url names a file on the server; a server reachable from other "
                                f"machines reads no local files. Send the image inline as a data: URI "
                                f"(data:image/png;base64,...).", "local_file_refused", f"{ref.where}.image_url")
        if not path.is_absolute():
            raise ApiError(400, f"{ref.where}.image_url is the relative path {str(path)!r}; give an absolute path "
                                f"(or file:///...), or send the image as a data: URI.", "invalid_image_url",
                           f"{ref.where}.image_url")
        return path

    def _refuse_remote(self, ref: ImageRef) -> Path:
        raise ApiError(400, f"{ref.where}.image_url is a web URL; this server runs offline and fetches nothing. "
                            f"Download the image and send it inline as a data: URI (data:image/png;base64,...).",
                       "remote_image_refused", f"{ref.where}.image_url")


URL_READERS = {"data": RequestImages._from_data_uri, "file": RequestImages._from_file_url, "": RequestImages._from_path,
               "http": RequestImages._refuse_remote, "https": RequestImages._refuse_remote}
