"""What rebuilds a network of :mod:`vocalmix.nets.mixing_cnn` or :mod:`vocalmix.nets.spectrum_mlp`.

Kept apart from both so each can import it and :func:`~vocalmix.nets.mixing_cnn.network_from_config`
can import both without a cycle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Li & Lerch's channels of the four convolutional blocks.
PUBLISHED_CHANNELS = (8, 16, 32, 64)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in every checkpoint.

    ``input_shape`` is ``(channels, mel bands, frames)``; ``hidden`` is the MLP's
    hidden width (0 = a single linear layer); ``dropout`` the probability before it.
    """

    n_outputs: int
    input_shape: tuple[int, int, int] = (2, 128, 64)
    channels: tuple[int, ...] = PUBLISHED_CHANNELS
    hidden: int = 64
    dropout: float = 0.3
    architecture: str = "li-lerch-cnn"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        channels_in, bands, frames = (int(v) for v in d["input_shape"])
        return cls(
            n_outputs=int(d["n_outputs"]),
            input_shape=(channels_in, bands, frames),
            channels=tuple(int(v) for v in d["channels"]),
            hidden=int(d["hidden"]),
            dropout=float(d["dropout"]),
            architecture=str(d.get("architecture", "li-lerch-cnn")),
        )
