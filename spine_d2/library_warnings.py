"""The libraries' deprecation noise the tools hide: torch.jit.script (detectron2) and pkg_resources."""
import warnings

NOISE = r".*(torch\.jit\.script|pkg_resources).*"  # both deprecated inside libraries, nothing we can change


def hide_library_warnings() -> None:
    """Ignore the warnings matching NOISE; call it before importing detectron2 or hydra."""
    warnings.filterwarnings("ignore", message=NOISE)
