"""Reference outputs of torchvision's RandomResizedCrop pixel work for the parity test (Debian's /usr/bin/python3).

Reads a JSON object {"size": S, "cap": C or null, "items": [{"path": p, "boxes": [[i, j, h, w], ...]}]}
on stdin. Each image is loaded as torchvision's ImageFolder does (Image.open(f).convert('RGB')),
passed through transforms.Resize(C) when its shorter side is over C, then each box goes through
F.resized_crop(img, i, j, h, w, [S, S]) (PIL crop, then resize BILINEAR): what RandomResizedCrop
does with the parameters get_params drew. Writes, per item, uint32 LE width and height of the
image the boxes were cut from, then per box S*S*3 RGB bytes, to the file named in argv[1].
"""
import json
import struct
import sys

import numpy as np
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as F


def main() -> None:
    request = json.load(sys.stdin)
    size = request["size"]
    with open(sys.argv[1], "wb") as out:
        for item in request["items"]:
            with open(item["path"], "rb") as f:
                img = Image.open(f).convert("RGB")
            cap = request.get("cap")
            if cap and min(img.size) > cap:
                img = transforms.Resize(cap)(img)
            out.write(struct.pack("<II", img.width, img.height))
            for i, j, h, w in item["boxes"]:
                crop = F.resized_crop(img, i, j, h, w, [size, size], transforms.InterpolationMode.BILINEAR)
                out.write(np.ascontiguousarray(np.asarray(crop, dtype=np.uint8)).tobytes())


if __name__ == "__main__":
    main()
