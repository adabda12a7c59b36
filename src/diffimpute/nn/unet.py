"""A small 2-D UNet denoiser for images up to about 64 x 64 on a CPU.

The engine hands every denoiser windows ``(batch, features, length)``; for images the features
are the colour channels and the length is the pixels in row-major order, ``height * width``. The
UNet folds the length back into ``(height, width)``, pads both up to a multiple of
``2 ** (n_levels - 1)`` so that any size (8 x 8, 28 x 28, 30 x 17) halves cleanly, and crops the
padding off its output. A constant "inside the image" input channel tells the convolutions which
pixels are padding.

Shapes inside: draws are folded into the batch as ``rows = batch * samples``; activations are
``(rows, width_channels, padded_height, padded_width)``, channels first as ``nn.Conv2d`` wants.

What does not depend on the diffusion step (the conditioning pixels, which pixels are given, the
first guess, a class label) is projected once per image by ``condition``; a step then costs the
noisy-input path and the network. The output layer starts at zero, so an untrained model's draws
are the guess (``nn.denoiser``).

Class labels (for class-conditional generation with classifier-free guidance): built with
``n_classes > 0`` the model embeds a label ``(batch,)`` int64 into the step embedding; index
``n_classes`` is the "no label" class, which ``label=None`` selects.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffimpute.nn.denoiser import Condition, ResidualDenoiser
from diffimpute.nn.embeddings import StepEmbedding

# ---------------------------------------------------------------------------- helpers


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups that divide ``channels``."""
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def padded_size(size: int, n_levels: int) -> int:
    """``size`` rounded up to a multiple of ``2 ** (n_levels - 1)`` (each level halves it)."""
    factor = 2 ** (n_levels - 1)
    return -(-size // factor) * factor


# ---------------------------------------------------------------------------- blocks


class ResBlock(nn.Module):
    """``x + conv(silu(norm(conv(silu(norm(x))) + step))))``, with a 1x1 skip when widths differ.

    x ``(rows, in_channels, H, W)``; emb ``(rows, d_emb)`` or ``(1, d_emb)`` -> ``(rows, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, d_emb: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(d_emb, out_channels)
        self.norm2 = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a (low-resolution) feature map, pre-norm, residual."""

    def __init__(self, channels: int, n_heads: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.attention = nn.MultiheadAttention(channels, n_heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, channels, height, width = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (rows, H*W, channels)
        out, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(rows, channels, height, width)


# ---------------------------------------------------------------------------- model


class UNetDenoiser(ResidualDenoiser):
    """Predicts the network output (noise, clean residual or velocity) at every pixel of an image.

    Parameters
    ----------
    n_features: colour channels of the images (1 grey, 3 RGB, 4 RGBA): the engine's features.
    height, width: image size in pixels; windows have length ``height * width``.
    channels: width of the first level; level ``i`` has ``channels * min(2 ** i, 4)``.
    n_levels: resolutions (each halves height and width); 2 suits 8 x 8 to 32 x 32.
    n_blocks: residual blocks per level on the way down (one more on the way up).
    attention: self-attention at the lowest resolution, with ``n_heads`` heads.
    d_step: size of the diffusion-step embedding (and of the class embedding).
    n_cond_channels: conditioning channels per cell passed to ``condition``; channel 0 holds the
        given values (0 elsewhere).
    guess: optional first-guess module (``nn.guess`` interface, e.g. ``nn.harmonic.HarmonicGuess``);
        its estimate is one more input and the diffusion runs over the residual from it.
    n_classes: class labels the model can be conditioned on (0: none); see the module notes.
    """

    def __init__(
        self,
        n_features: int,
        height: int,
        width: int,
        channels: int = 32,
        n_levels: int = 2,
        n_blocks: int = 1,
        attention: bool = False,
        n_heads: int = 4,
        d_step: int = 64,
        n_cond_channels: int = 1,
        dropout: float = 0.0,
        guess: nn.Module | None = None,
        n_classes: int = 0,
    ) -> None:
        super().__init__(n_features, guess, n_classes, d_label=d_step)
        if height < 1 or width < 1 or n_levels < 1 or n_blocks < 1:
            raise ValueError(f"height, width, n_levels and n_blocks must be >= 1, got {height}, {width}, "
                             f"{n_levels}, {n_blocks}")
        self.height, self.width, self.n_levels = height, width, n_levels
        self.padded = (padded_size(height, n_levels), padded_size(width, n_levels))
        widths = [channels * min(2**level, 4) for level in range(n_levels)]
        if attention and widths[-1] % n_heads:
            raise ValueError(f"the lowest level's width ({widths[-1]}) must be divisible by n_heads ({n_heads})")
        # given values, given mask, the guess, and "inside the image"
        cond_inputs = n_features * (n_cond_channels + 1 + (guess is not None)) + 1
        self.cond_input = nn.Conv2d(cond_inputs, widths[0], 3, padding=1)
        self.noisy_input = nn.Conv2d(n_features, widths[0], 3, padding=1, bias=False)
        self.step_embedding = StepEmbedding(d_step)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_widths = [widths[0]]
        width_now = widths[0]
        for level, level_width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(n_blocks):
                blocks.append(ResBlock(width_now, level_width, d_step, dropout))
                width_now = level_width
                skip_widths.append(width_now)
            self.down.append(blocks)
            if level < n_levels - 1:
                self.downsample.append(nn.Conv2d(width_now, width_now, 3, stride=2, padding=1))
                skip_widths.append(width_now)
        self.middle = nn.ModuleList([ResBlock(width_now, width_now, d_step, dropout),
                                     ResBlock(width_now, width_now, d_step, dropout)])
        self.attention = SelfAttention(width_now, n_heads) if attention else None
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(n_levels)):
            blocks = nn.ModuleList()
            for _ in range(n_blocks + 1):
                blocks.append(ResBlock(width_now + skip_widths.pop(), widths[level], d_step, dropout))
                width_now = widths[level]
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(nn.Conv2d(width_now, width_now, 3, padding=1))
        self.out_norm = _norm(width_now)
        self.output = nn.Conv2d(width_now, n_features, 3, padding=1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    # ------------------------------------------------------------------ shapes
    def _to_maps(self, cells: torch.Tensor) -> torch.Tensor:
        """``(rows, c, height * width)`` -> ``(rows, c, padded_height, padded_width)``, zero padded."""
        rows, c, length = cells.shape
        if length != self.height * self.width:
            raise ValueError(f"the UNet was built for {self.height} x {self.width} images "
                             f"({self.height * self.width} pixels), got windows of length {length}")
        maps = cells.reshape(rows, c, self.height, self.width)
        return F.pad(maps, (0, self.padded[1] - self.width, 0, self.padded[0] - self.height))

    def _to_cells(self, maps: torch.Tensor) -> torch.Tensor:
        """Inverse of ``_to_maps``: crop the padding, ``(rows, c, height * width)``."""
        return maps[:, :, : self.height, : self.width].reshape(maps.shape[0], maps.shape[1], -1)

    # ------------------------------------------------------------------ engine interface
    def condition(
        self,
        cond_channels: torch.Tensor,
        cond_mask: torch.Tensor,
        positions: torch.Tensor,
        mask_index: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> Condition:
        """Precompute everything that does not depend on the diffusion step.

        cond_channels: ``(batch, n_cond_channels, features, height * width)``; cond_mask: ``(batch,
        features, height * width)``, True where a pixel value is given; positions: ``(batch,
        height * width)``, unused (a convolution knows where it is from its neighbours and the
        padding); label: ``(batch,)`` int64 in ``[0, n_classes]`` (``n_classes`` = no label) or None.
        """
        if mask_index is not None:
            raise ValueError("the UNet denoiser has no mask-index embedding; pass mask_index=None")
        batch = cond_channels.shape[0]
        guess = self.first_guess(cond_channels, cond_mask, positions)
        parts = [cond_channels.flatten(1, 2), cond_mask.to(cond_channels.dtype)]
        if guess is not None:
            parts.append(guess)
        parts.append(torch.ones_like(cond_mask[:, :1], dtype=cond_channels.dtype))
        input_bias = self.cond_input(self._to_maps(torch.cat(parts, dim=1)))
        label_vector = self.embed_label(label, batch)
        side = [] if label_vector is None else [label_vector]
        return Condition(input_bias=input_bias, side=side, guess=guess)

    def forward(self, x_noisy: torch.Tensor, steps: torch.Tensor, condition: Condition) -> torch.Tensor:
        """x_noisy ``(batch, samples, features, height * width)``; steps ``(batch * samples,)`` or
        ``(1,)`` when all rows share a step. Returns ``(batch, samples, features, height * width)``."""
        batch, samples, n_features, length = x_noisy.shape
        rows = batch * samples
        h = self.noisy_input(self._to_maps(x_noisy.reshape(rows, n_features, length)))
        bias = condition.input_bias
        h = (h.view(batch, samples, *h.shape[1:]) + bias.unsqueeze(1)).view(rows, *h.shape[1:])
        emb = self.step_embedding(steps)
        if condition.side:
            emb = emb + condition.side[0].repeat_interleave(samples, dim=0)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if level < self.n_levels - 1:
                h = self.downsample[level](h)
                skips.append(h)
        h = self.middle[0](h, emb)
        if self.attention is not None:
            h = self.attention(h)
        h = self.middle[1](h, emb)
        for i, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < self.n_levels - 1:
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.output(F.silu(self.out_norm(h)))
        return self._to_cells(out).view(batch, samples, n_features, length)
