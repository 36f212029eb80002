"""What milr imports at start-up: keep it light, load models in the factory."""

from milr_core.plugins import hookimpl


def _colour_share(**kwargs):
    # milr passes backbone= (and may pass more); this critic needs none of it
    from .critic import ColourShare

    return ColourShare()


@hookimpl
def register_critics(register):
    register("colour-share", _colour_share, "share of pixels in the colour the prompt names")
