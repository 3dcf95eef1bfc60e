"""The libraries' noise the tools hide: deprecations inside detectron2, hydra and torch that users
can do nothing about, printed on every run."""
import logging
import warnings

# torch.jit.script and pkg_resources (detectron2, hydra): deprecated inside the libraries;
# torch.meshgrid without `indexing` (detectron2's anchor generator): a future default, same result
NOISE = r".*(torch\.jit\.script|pkg_resources|torch\.meshgrid: in an upcoming release).*"
# torch logs once, as a warning, that is_fx_tracing (detectron2's ROI pooler asks it) will change
QUIET_LOGGERS = ("torch.fx._symbolic_trace",)


def hide_library_warnings() -> None:
    """Ignore the warnings matching NOISE and the warnings of QUIET_LOGGERS (their errors still
    show); call it before importing detectron2 or hydra."""
    warnings.filterwarnings("ignore", message=NOISE)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
