"""Reference outputs of torchvision's transforms for the parity test (run with Debian's /usr/bin/python3).

Reads a JSON object {"paths": [...], "resize": 256, "crop": 224 or null} on stdin and writes, for each
path, uint32 LE width, uint32 LE height, then height*width*3 RGB bytes to the file named in argv[1].
Loading is torchvision ImageFolder's pil_loader: Image.open(f).convert('RGB').
"""
import json
import struct
import sys

import numpy as np
import torchvision
from PIL import Image
from torchvision import transforms


def main() -> None:
    request = json.load(sys.stdin)
    steps = [transforms.Resize(request["resize"])]
    if request.get("crop"):
        steps.append(transforms.CenterCrop(request["crop"]))
    transform = transforms.Compose(steps)
    with open(sys.argv[1], "wb") as out:
        for path in request["paths"]:
            with open(path, "rb") as f:
                img = Image.open(f).convert("RGB")
            arr = np.asarray(transform(img), dtype=np.uint8)
            h, w, _ = arr.shape
            out.write(struct.pack("<II", w, h))
            out.write(np.ascontiguousarray(arr).tobytes())
    print(json.dumps({"torchvision": torchvision.__version__, "count": len(request["paths"])}))


if __name__ == "__main__":
    main()
