"""Stand-in detectors for the test-time passes (high-resolution windows, turned looks, the mirrored
run): every bright blob of the preprocessed input is a body scoring 0.9 (`cls`: lumbar), returned in
the frame of the input's `height` × `width` as a detectron2 model returns it. A subclass says where a
body's corners lie (`corners`: (4, 3) rows x, y, score in that frame); the base class has no corner
head.
`calls` counts the model's runs, `images` the images it was given, `pixels` their pixels.
`corners_in_boxes` stands in for `spine_d2.engine.highres._corners_in_boxes` (bodies given to the
corner head in their boxes): each box's corners read from the blob inside it."""
from __future__ import annotations

import cv2
import numpy as np
import torch
from detectron2.structures import Boxes, Instances


class BlobModel(torch.nn.Module):
    calls = 0
    images = 0
    pixels = 0
    threshold: float | None = None  # grey level a blob is brighter than; None: the input's mean + std

    def corners(self, mask: np.ndarray, img: np.ndarray) -> list | None:
        return None

    def cls(self, mask: np.ndarray) -> int:
        return 1  # lumbar

    def forward(self, inputs):
        self._count(inputs)
        out = []
        for inp in inputs:
            h, w = inp["height"], inp["width"]
            img = cv2.resize(inp["image"].float().mean(0).numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
            thr = img.mean() + img.std() if self.threshold is None else self.threshold
            n, lab = cv2.connectedComponents((img > thr).astype(np.uint8))
            masks = [lab == k for k in range(1, n)]
            boxes = []
            for m in masks:
                ys, xs = np.nonzero(m)
                boxes.append([xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0])
            inst = Instances((h, w))
            inst.pred_masks = torch.as_tensor(np.array(masks, bool).reshape(-1, h, w))
            inst.pred_boxes = Boxes(torch.as_tensor(np.array(boxes, np.float32).reshape(-1, 4)))
            inst.pred_classes = torch.as_tensor([self.cls(m) for m in masks], dtype=torch.int64)
            inst.scores = torch.full((len(masks),), 0.9)
            kps = [self.corners(m, img) for m in masks]
            if kps and all(k is not None for k in kps):
                inst.pred_keypoints = torch.as_tensor(np.array(kps, np.float32).reshape(-1, 4, 3))
            out.append({"instances": inst})
        return out

    def _count(self, inputs) -> None:
        self.calls += 1
        self.images += len(inputs)
        self.pixels += sum(int(np.prod(inp["image"].shape[1:])) for inp in inputs)

    def corners_in_boxes(self, inputs, given):
        """Per input, `given` (pred_boxes and pred_classes, input px) with `pred_keypoints` (input
        px): `corners` of the part of the bright blob inside each box, read as `forward` reads them
        (in the frame of the input's `height` × `width`)."""
        self._count(inputs)
        out = []
        for inp, g in zip(inputs, given):
            h, w = inp["height"], inp["width"]
            scale = np.array([w / inp["image"].shape[2], h / inp["image"].shape[1]])  # input px → that frame
            img = cv2.resize(inp["image"].float().mean(0).numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
            fg = img > (img.mean() + img.std() if self.threshold is None else self.threshold)
            kps = []
            for x0, y0, x1, y1 in g.pred_boxes.tensor.numpy() * np.tile(scale, 2):
                inside = np.zeros_like(fg)
                inside[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
                kps.append(self.corners(fg & inside, img))
            kp = np.array(kps, np.float32).reshape(-1, 4, 3)
            kp[:, :, :2] /= scale
            res = Instances(g.image_size)
            res.pred_boxes, res.pred_classes, res.scores = g.pred_boxes, g.pred_classes, torch.full((len(kps),), 0.9)
            res.pred_keypoints = torch.as_tensor(kp)
            out.append(res)
        return out
