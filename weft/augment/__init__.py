"""weft.augment: multi-target augmentation where every projective step is fused into one warp.

Items (Image, Mask, Keypoints, BoundingBoxes, Polygon) in a sample move together under one set
of drawn parameters; a run of geometric transforms composes into one 3x3 matrix and one warp
over the output pixels only. Imports numpy and OpenCV, never torch.

    pipe = Sequence(Affine(rotate=15, scale=(0.9, 1.1)), RandomResizedCrop(224),
                    Maybe(FlipX()), ColorJitter(0.2, 0.2, 0.2, 0.1), Normalize())
    image, mask = pipe((Image(img), Mask(seg)), rng=seed)
    x, y = arrays(pipe((Image(img), Mask(seg)), rng=seed))   # plain arrays, e.g. for collate
"""

from weft.augment.batch import allocate_batch, apply_batch, on_arrays, sample_generators
from weft.augment.color import (
    Blur,
    Brightness,
    ColorJitter,
    Contrast,
    Cutout,
    Gamma,
    GaussianNoise,
    Grayscale,
    Hue,
    Normalize,
    Saturation,
)
from weft.augment.compose import Maybe, OneOf, Sequence, SomeOf
from weft.augment.crop import CenterCrop, Crop, Pad, PadDivisible, RandomCrop, RandomResizedCrop
from weft.augment.items import BoundingBoxes, Image, Item, Keypoints, Mask, Polygon, arrays
from weft.augment.preview import render, show_grid
from weft.augment.projective import (
    Affine,
    FlipX,
    FlipY,
    Perspective,
    Project,
    Resize,
    Rotate,
    Scale,
    ScaleKeepAspect,
    Shear,
    Translate,
    Zoom,
)
from weft.augment.transform import Pixel, Projective, State, Transform

__all__ = [
    "Affine",
    "Blur",
    "BoundingBoxes",
    "Brightness",
    "CenterCrop",
    "ColorJitter",
    "Contrast",
    "Crop",
    "Cutout",
    "FlipX",
    "FlipY",
    "Gamma",
    "GaussianNoise",
    "Grayscale",
    "Hue",
    "Image",
    "Item",
    "Keypoints",
    "Mask",
    "Maybe",
    "Normalize",
    "OneOf",
    "Pad",
    "PadDivisible",
    "Perspective",
    "Pixel",
    "Polygon",
    "Project",
    "Projective",
    "RandomCrop",
    "RandomResizedCrop",
    "Resize",
    "Rotate",
    "Saturation",
    "Scale",
    "ScaleKeepAspect",
    "Sequence",
    "Shear",
    "SomeOf",
    "State",
    "Transform",
    "Translate",
    "Zoom",
    "allocate_batch",
    "apply_batch",
    "arrays",
    "on_arrays",
    "render",
    "sample_generators",
    "show_grid",
]
