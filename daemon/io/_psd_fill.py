"""The colour of a "Solid Color" fill layer, in the document's stored channel space.

A solid fill is a constant colour over the whole canvas, shown through the
layer's mask: exact to composite, and a common studio backdrop behind a
cut-out subject. Its colour is a descriptor in Photoshop's colour picker
units; only RGB (0–255) in an RGB document is taken, the one case checked
against Photoshop's own merged images (layers/solid-color-fill.psd,
opacity-fill.psd of the corpus: equal). Fills in CMYK and grayscale documents
(ink percentages whose stored form we could not check against Photoshop), and
colours in another model (Lab, HSB, a "book" colour, which would need
Photoshop's conversion) are refused.
"""

from __future__ import annotations

from daemon.errors import UnsupportedInput

MODE_RGB = 3
RGB_CLASS = b"RGBC"
RGB_KEYS = (b"Rd  ", b"Grn ", b"Bl  ")


def solid_fill_colour(setting: object, mode: int, layer_name: str, advice: str) -> tuple[float, ...]:
    """``setting``: the ``SoCo`` block's descriptor; the colour as stored values in [0, 1]."""
    if mode != MODE_RGB:
        raise UnsupportedInput(f"fill layer '{layer_name}' is in a CMYK or grayscale document; {advice}")
    colour = _get(setting, b"Clr ")
    class_id = getattr(colour, "classID", None)
    if colour is None or class_id != RGB_CLASS:
        shown = class_id.decode("latin-1").strip() if isinstance(class_id, bytes) else "unknown"
        raise UnsupportedInput(
            f"fill layer '{layer_name}' has its colour in another colour model ({shown}); {advice}"
        )
    values = []
    for key in RGB_KEYS:
        raw = _get(colour, key)
        number = getattr(raw, "value", raw)
        if not isinstance(number, (int, float)):
            raise UnsupportedInput(f"fill layer '{layer_name}' has an incomplete colour; {advice}")
        values.append(min(1.0, max(0.0, float(number) / 255.0)))
    return tuple(values)


def _get(descriptor: object, key: bytes) -> object:
    getter = getattr(descriptor, "get", None)
    return getter(key) if getter is not None else None
