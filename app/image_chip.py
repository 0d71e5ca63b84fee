"""The image waiting to go with a chat column's next message: a thumbnail, its file name, and ✕."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

# what the file dialog offers and a drop accepts; the engine opens anything Pillow reads
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
CHIP_THUMB = 40  # pixels: recognisable, and the chip stays one text line high


def thumbnail(path: str, size: int) -> QImage:
    """The image at `path` shrunk to fit `size` x `size` (a null QImage if Qt cannot read it)."""
    image = QImage(path)
    if image.isNull():
        return image
    return image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


class ImageChip(QFrame):
    """Hidden until `show_image(path)`; ✕ (or `clear()`) empties and hides it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.path = ""
        self.setFrameShape(QFrame.Shape.StyledPanel)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        self.thumb = QLabel()
        self.name = QLabel()
        self.remove = QToolButton()
        self.remove.setText("✕")
        self.remove.setToolTip("Do not send this image")
        row.addWidget(self.thumb)
        row.addWidget(self.name, 1)
        row.addWidget(self.remove)
        self.remove.clicked.connect(self.clear)
        self.setVisible(False)

    def show_image(self, path: str) -> None:
        self.path = path
        image = thumbnail(path, CHIP_THUMB)
        self.thumb.setPixmap(QPixmap.fromImage(image) if not image.isNull() else QPixmap())
        self.name.setText(Path(path).name)
        self.name.setToolTip(f"{path}\ngoes with your next message")
        self.setVisible(True)

    def clear(self) -> None:
        self.path = ""
        self.thumb.clear()
        self.name.clear()
        self.setVisible(False)
