"""Preprocessing and augmentation as detectron2 transforms, so polygons move with the pixels (image frame, pixels).

One chain for training, evaluation and prediction (`build_augmentations`): resize to the input
size (`SPINE.INPUT`: height x width, `resize` exactly or `keep_aspect` inside it), in training the
augmentations (`SPINE.AUG`: scale, an optional random crop, horizontal flip, rotation of
+-[min_deg, max_deg], contrast, photometric: gamma, blur or sharpening, noise, JPEG), and always
last the per-image mean-intensity normalisation. Only
scaling, cropping, flipping and rotating move pixels, and each is a detectron2 Transform that moves
the polygons with them (a crop clips them; instances left outside are dropped by the mapper).
Predictions come back in the original image frame (detectron2 rescales to `height`/`width`).
`SpineDatasetMapper` is detectron2's DatasetMapper reading images with `spine_d2.data.images`.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from PIL import Image

from spine_d2.data.images import read_image


class MeanIntensityTransform(T.Transform):
    """Scales pixel values by `gain` (float32 out, not clipped: the image mean becomes exactly the
    target); geometry unchanged."""

    def __init__(self, gain: float):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return img.astype(np.float32) * np.float32(self.gain)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> T.Transform:
        return T.NoOpTransform()


class MeanIntensityNormalize(T.Augmentation):
    """Per-image normalisation: the image's mean intensity (all channels) becomes `target`."""

    def __init__(self, target: float = 128.0):
        super().__init__()
        self.target = float(target)

    def get_transform(self, image: np.ndarray) -> T.Transform:
        mean = float(np.mean(image))
        return MeanIntensityTransform(self.target / mean if mean > 1e-6 else 1.0)


class Photometric(T.Augmentation):
    """How another film, console or camera renders the same anatomy (image only; geometry unchanged):
    each with probability `prob`, a gamma (log-normal, SD 0.35), a Gaussian blur (SD 0.3–1.5 px)
    or an unsharp mask (gain 0.3–1.5), sensor noise (SD 2–10 grey levels), JPEG quality 30–90.
    Parameters come from numpy's global RNG, as detectron2's own augmentations draw them."""

    def __init__(self, prob: float = 0.5):
        super().__init__()
        self.prob = float(prob)

    def get_transform(self, image: np.ndarray) -> T.Transform:
        r = np.random
        ops = {"gamma": float(np.exp(r.normal(0.0, 0.35))) if r.rand() < self.prob else None,
               "blur": float(r.uniform(0.3, 1.5)) if r.rand() < self.prob / 2 else None,
               "sharpen": float(r.uniform(0.3, 1.5)) if r.rand() < self.prob / 3 else None,
               "noise": float(r.uniform(2.0, 10.0)) if r.rand() < self.prob / 2 else None,
               "jpeg": int(r.randint(30, 91)) if r.rand() < self.prob / 3 else None,
               "seed": int(r.randint(2**31))}
        return T.ColorTransform(lambda img: _photometric(img, **ops))


def _photometric(img: np.ndarray, gamma, blur, sharpen, noise, jpeg, seed) -> np.ndarray:
    import cv2

    out = img.astype(np.float32)
    if gamma is not None:
        out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** gamma
    if blur is not None:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    elif sharpen is not None:
        out = out + sharpen * (out - cv2.GaussianBlur(out, (0, 0), 1.5))
    if noise is not None:
        out = out + np.random.default_rng(seed).normal(0.0, noise, out.shape).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if jpeg is not None:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).reshape(out.shape) if ok else out
    return out.astype(img.dtype)


class ResizeToInput(T.Augmentation):
    """Resize to height x width (`fit="resize"`) or to the largest size inside it with the aspect
    kept (`fit="keep_aspect"`); `scale=(lo, hi)` multiplies the target size by a random factor."""

    def __init__(self, height: int, width: int, fit: str = "resize", scale=(1.0, 1.0),
                 interp=Image.BILINEAR):
        super().__init__()
        if fit not in ("resize", "keep_aspect"):
            raise ValueError(f"fit={fit!r}: use resize or keep_aspect")
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        lo, hi = self.scale
        s = lo if lo == hi else float(np.random.uniform(lo, hi))
        H, W = self.height * s, self.width * s
        if self.fit == "keep_aspect":
            r = min(H / h, W / w)
            H, W = h * r, w * r
        return T.ResizeTransform(h, w, max(1, round(H)), max(1, round(W)), self.interp)


class RandomSmallRotation(T.Augmentation):
    """With probability `prob`, rotate about the centre by +-[min_deg, max_deg] degrees (same size)."""

    def __init__(self, min_deg: float = 1.0, max_deg: float = 5.0, prob: float = 0.5):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        if np.random.rand() >= self.prob:
            return T.NoOpTransform()
        angle = float(np.random.uniform(self.min_deg, self.max_deg)) * float(np.random.choice([-1, 1]))
        h, w = image.shape[:2]
        return T.RotationTransform(h, w, angle, expand=False)


def build_augmentations(cfg, is_train: bool) -> list:
    """The preprocessing (+ augmentation when `is_train`) chain from `cfg.SPINE` (a detectron2 cfg)."""
    inp, aug = cfg.SPINE.INPUT, cfg.SPINE.AUG
    scale = (aug.SCALE.MIN, aug.SCALE.MAX) if is_train and aug.SCALE.ENABLED else (1.0, 1.0)
    chain = [ResizeToInput(inp.HEIGHT, inp.WIDTH, inp.FIT, scale)]
    if is_train:
        if aug.CROP.ENABLED:
            chain.append(T.RandomCrop("absolute", (aug.CROP.HEIGHT, aug.CROP.WIDTH)))
        if aug.FLIP.ENABLED:
            chain.append(T.RandomFlip(prob=aug.FLIP.PROB, horizontal=True, vertical=False))
        if aug.ROTATION.ENABLED:
            chain.append(RandomSmallRotation(aug.ROTATION.MIN_DEG, aug.ROTATION.MAX_DEG, aug.ROTATION.PROB))
        if aug.CONTRAST.ENABLED:
            chain.append(T.RandomApply(T.RandomContrast(aug.CONTRAST.MIN, aug.CONTRAST.MAX),
                                       prob=aug.CONTRAST.PROB))
        if aug.PHOTOMETRIC.ENABLED:
            chain.append(Photometric(aug.PHOTOMETRIC.PROB))
    if inp.MEAN_INTENSITY is not None:
        chain.append(MeanIntensityNormalize(inp.MEAN_INTENSITY))
    return chain


class SpineDatasetMapper(DatasetMapper):
    """detectron2's DatasetMapper, its image read by the project's one reader (EXIF orientation,
    HEIC, 16-bit scaled: `spine_d2.data.images`) instead of detectron2's, which clips 16 bits.
    No semantic segmentation or precomputed proposals (this project has neither)."""

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image.shape[:2])
        return dataset_dict


def build_mapper(cfg, is_train: bool) -> DatasetMapper:
    """Our DatasetMapper with our chain; in training, boxes are recomputed from the moved
    polygons (a rotated box would not be tight)."""
    keypoints = bool(is_train and cfg.MODEL.KEYPOINT_ON)
    return SpineDatasetMapper(
        is_train=is_train,
        augmentations=build_augmentations(cfg, is_train),
        image_format=cfg.INPUT.FORMAT,
        use_instance_mask=cfg.MODEL.MASK_ON,
        instance_mask_format=cfg.INPUT.MASK_FORMAT,
        use_keypoint=keypoints,
        # corners are named anatomically (spine_d2.levels.CORNERS): a flip keeps every name
        keypoint_hflip_indices=np.arange(cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS) if keypoints else None,
        recompute_boxes=bool(is_train and cfg.MODEL.MASK_ON),
    )


def input_scale(shape: tuple[int, int], cfg) -> float:
    """Input px per image px, vertically, of an image of `shape` (H, W) preprocessed for evaluation."""
    h, w = int(shape[0]), int(shape[1])
    inp = cfg.SPINE.INPUT
    return ResizeToInput(inp.HEIGHT, inp.WIDTH, inp.FIT).get_transform(np.empty((h, w), np.uint8)).new_h / h


def model_input(image: np.ndarray, cfg) -> dict:
    """One image (H x W x C in cfg.INPUT.FORMAT, as read by detectron2) as the model's input dict,
    preprocessed exactly as in evaluation; outputs come back in this image's frame."""
    aug_input = T.AugInput(image)
    T.AugmentationList(build_augmentations(cfg, is_train=False))(aug_input)
    h, w = image.shape[:2]
    tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
    return {"image": tensor, "height": h, "width": w}

