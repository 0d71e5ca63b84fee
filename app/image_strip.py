"""A row of image thumbnails with their pixel sizes: the images of a data record (Data page)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

THUMB = 96  # pixels: big enough to recognise a photo, small enough for a row of several


class ImageStrip(QWidget):
    """Thumbnails of `images` ([{path, width, height}]), each captioned 'W x H'."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.thumbs: list[QLabel] = []

    def show_images(self, images: list[dict], image_tokens: int | None = None) -> None:
        while self.row.count():
            item = self.row.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self.thumbs = []
        for im in images:
            box = QWidget()
            col = QVBoxLayout(box)
            pic = QLabel()
            pix = QPixmap(im["path"])
            if not pix.isNull():
                pic.setPixmap(pix.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.FastTransformation))  # crisp pixels for tiny images
            pic.setToolTip(im["path"])
            cost = f" · {image_tokens} tokens" if image_tokens else ""
            col.addWidget(pic)
            col.addWidget(QLabel(f"{im['width']} x {im['height']}{cost}"))
            self.row.addWidget(box)
            self.thumbs.append(pic)
        self.row.addStretch(1)
        self.setVisible(bool(images))
