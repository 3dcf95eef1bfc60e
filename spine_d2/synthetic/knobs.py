"""The phantom's knobs (share of each view and strength of each artefact) and the difficulty presets.

Fractions and probabilities are in [0, 1]; sizes in pixels of the output image unless named
otherwise; angles in degrees. `knobs_for("hard", glare=0.9)` is the hard preset with one knob
changed; Hydra's `conf/make_synthetic.yaml` lists the same names under `knobs:` (null = the preset's value).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class Knobs:
    # what is in the picture
    photo_fraction: float = 0.65     # phone photos of a monitor; the rest are screenshots
    partial_fraction: float = 0.3    # films with the thoracic spine or the femoral heads left out
    mirror_fraction: float = 0.3     # patient facing left
    deformity_fraction: float = 0.15  # couplings broken: lost lordosis, retroverted pelvis
    cover_fraction: float = 0.2      # TK, LL, SS uniform over the reference study's ranges
    pathology_fraction: float = 0.35  # degenerated discs, fractures, slips, transitional segments
    hardware_fraction: float = 0.08  # post-operative: pedicle screws, rods, cages
    scoliosis: float = 0.12          # a coronal curve with axial rotation (double contours)
    ct_fraction: float = 0.08        # rendered like a DRR from a CT: no film processing or noise, cut-off field
    zoom: float = 0.15               # viewer zoom beyond "fit", up to this fraction (crops the film)
    # the film
    exposure_jitter: float = 0.15    # spread of window/level and gamma
    scatter: float = 0.3             # scatter veil fraction
    quantum_noise: float = 0.02      # quantum noise SD (of full scale)
    # the photo of the monitor (CheXphoto-style)
    tilt: float = 15.0               # degrees: the screen plane turned (pitch and yaw) up to ± this
    rotation_deg: float = 6.0        # degrees: the camera's roll (in-plane rotation) up to ± this
    crop: float = 0.1                # the frame cuts up to this fraction into the screen
    moire: float = 0.5               # probability of moiré
    moire_opacity: float = 0.25      # its opacity up to this
    glare: float = 0.4               # probability of a glare spot
    glare_alpha: float = 0.5         # its strength up to this
    blur_sigma: float = 1.2          # Gaussian blur SD up to this (px)
    motion_blur: float = 0.15        # probability of motion blur
    noise_sd: float = 6.0            # sensor noise SD up to this (grey levels)
    vignette: float = 0.35           # corner darkening up to this
    color_cast: float = 0.08         # white-balance error up to this
    jpeg_quality_min: int = 60       # JPEG quality drawn from [this, 95]
    # the screen
    text: float = 1.0                # probability of PACS corner text
    ui: float = 0.8                  # probability of viewer chrome (toolbar, ruler, cursor)


PRESETS: dict[str, Knobs] = {
    "realistic": Knobs(),
    "easy": Knobs(photo_fraction=0.5, partial_fraction=0.0, mirror_fraction=0.0, zoom=0.0,
                  pathology_fraction=0.1, hardware_fraction=0.0, scoliosis=0.0, ct_fraction=0.0,
                  exposure_jitter=0.05, scatter=0.15, quantum_noise=0.01, tilt=5.0,
                  rotation_deg=2.0, crop=0.0, moire=0.0, glare=0.0, blur_sigma=0.5,
                  motion_blur=0.0, noise_sd=2.0, vignette=0.1, color_cast=0.03,
                  jpeg_quality_min=85, text=0.5, ui=0.3),
    "hard": Knobs(partial_fraction=0.45, mirror_fraction=0.4, deformity_fraction=0.2, zoom=0.35,
                  pathology_fraction=0.6, hardware_fraction=0.2, scoliosis=0.25, ct_fraction=0.1,
                  exposure_jitter=0.3, scatter=0.45, quantum_noise=0.035, tilt=25.0,
                  rotation_deg=15.0, crop=0.2, moire=0.8, moire_opacity=0.5, glare=0.7,
                  glare_alpha=0.7, blur_sigma=2.5, motion_blur=0.35, noise_sd=12.0,
                  vignette=0.6, color_cast=0.15, jpeg_quality_min=35),
}


def knob_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Knobs))


def knobs_for(difficulty: str = "realistic", **overrides) -> Knobs:
    """The preset `difficulty` with `overrides` applied (None values ignored); clear errors on typos."""
    if difficulty not in PRESETS:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose one of {', '.join(PRESETS)}")
    unknown = set(overrides) - set(knob_names())
    if unknown:
        raise ValueError(f"unknown phantom knob(s) {sorted(unknown)}; known: {', '.join(knob_names())}")
    given = {k: type(getattr(PRESETS[difficulty], k))(v) for k, v in overrides.items() if v is not None}
    return replace(PRESETS[difficulty], **given)


def as_dict(knobs: Knobs) -> dict:
    return asdict(knobs)
