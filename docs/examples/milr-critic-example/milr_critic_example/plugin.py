"""What milr imports at start-up: keep it light, load models in the factory."""

from pydantic import BaseModel, Field

from milr_core.plugins import hookimpl


class Options(BaseModel):
    """What a user may set: `--critic-option target=0.2`, or `target = 0.2` under [critic] in a config file."""

    target: float = Field(0.05, gt=0, le=1, description="Share of the image the colour should cover for a reward of 1.")


def _colour_share(target, **kwargs):
    # milr passes the options, backbone= (and may pass more); this critic needs only its option
    from .critic import ColourShare

    return ColourShare(target)


@hookimpl
def register_critics(register):
    register("colour-share", _colour_share, "share of pixels in the colour the prompt names", options=Options)
