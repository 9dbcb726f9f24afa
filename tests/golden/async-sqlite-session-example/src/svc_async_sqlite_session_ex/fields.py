"""Field types shared by request bodies."""

from typing import Annotated

from pydantic import AfterValidator


def storable(value: str) -> str:
    """Refuse text that no database stores: NUL characters, and unpaired
    surrogates (JSON escapes such as "\\ud800"), which are not valid UTF-8."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no unpaired surrogates)") from None
    return value


# Text that is stored or hashed: refused with 422 when it could not be.
Text = Annotated[str, AfterValidator(storable)]
