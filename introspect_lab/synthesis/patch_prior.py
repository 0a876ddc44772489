"""The data-driven patch prior of Wei, Zhou, Torralba & Freeman (seed 002, Eq. 3), on the synthesis engine.

Deep features are insensitive to an image's low frequencies, so inversion
and class visualisation land on images with unnatural colours (seed 002,
Fig. 2). The patch prior pulls every patch of the image towards its nearest
neighbour in a database of natural patches::

    R(I) = R_α ‖I‖² + R_β ‖∇I‖² + R_γ Σ_p ‖Ĩ_p − D̃_p‖²                 (Eq. 3)

``Ĩ_p`` are the densely sampled patches of ``I`` after *global*
normalisation (the whole image's mean and std, so the prior judges
structure and relative colour, not brightness or contrast) and ``D̃_p`` the
nearest normalised database patches. The optimisation alternates:

* a **continuous step** — the engine's usual gradient step on the objective
  with the term :meth:`PatchPrior.term` (``D̃_p`` held fixed), and
* a **discrete step** — nearest-patch matching given the current image,
  :meth:`PatchPrior.after_step`, every ``every`` steps (the prior is a
  :class:`~introspect_lab.synthesis.priors.StepOp` of the engine).

For inversion the paper builds the database by retrieval: patches whose
conv features resemble the target's (Long et al. 2014). :func:`retrieve`
does this offline on the bundled photos: for every cell of the target's
conv map, the ``k`` database cells with the closest features; their pixels
give the "[8]+[7]" initialisation (the average, seed 002 Fig. 3a) and the
patch database of the prior. Inversion with the prior is
:func:`introspect_lab.synthesis.invert` with ``prior=PatchPrior(...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..images import denormalize, normalize
from ..info import model_info
from .engine import layer_features
from .objectives import INPUT, Objective
from .priors import StepOp

__all__ = [
    "normalize_global",
    "extract_patches",
    "patch_distance",
    "PatchDatabase",
    "PatchPrior",
    "Retrieval",
    "retrieve",
]


def normalize_global(img: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(I − mean(I)) / std(I)`` per image, mean and std over all pixels and channels (seed 002,
    Sec. 3.2).
    """
    if img.dim() != 4:
        raise ValueError(f"normalize_global needs a [B, C, H, W] batch, got shape {tuple(img.shape)}.")
    flat = img.flatten(1)
    mu = flat.mean(1).view(-1, 1, 1, 1)
    sd = flat.std(1).view(-1, 1, 1, 1)
    return (img - mu) / (sd + eps)


def extract_patches(img: torch.Tensor, size: int = 8, stride: int = 4) -> torch.Tensor:
    """Dense ``size``×``size`` patches every ``stride`` px: ``[B, 3, H, W]`` → ``[B, L, 3·size²]``."""
    if img.dim() != 4:
        raise ValueError(f"extract_patches needs a [B, C, H, W] batch, got shape {tuple(img.shape)}.")
    if min(img.shape[-2:]) < size:
        raise ValueError(f"Patches of {size} px do not fit an image of {tuple(img.shape[-2:])} px.")
    return F.unfold(img, size, stride=stride).transpose(1, 2)


def patch_distance(a: torch.Tensor, b: torch.Tensor, size: int = 8, stride: int = 4) -> torch.Tensor:
    """``Σ_p ‖ã_p − b̃_p‖²`` between two images' globally normalised patches, one value per image.

    Invariant to ``I → s·I + t`` (``s > 0``) of either image: the patches
    are compared after :func:`normalize_global`.
    """
    pa = extract_patches(normalize_global(a), size, stride)
    pb = extract_patches(normalize_global(b), size, stride)
    return (pa - pb).pow(2).sum(dim=(1, 2))


@dataclass
class PatchDatabase:
    """Normalised natural patches ``[N, 3·size²]`` (each source image normalised globally first)."""

    patches: torch.Tensor
    size: int = 8
    stride: int = 4
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.patches.shape[0])

    def __repr__(self) -> str:
        return (
            f"PatchDatabase({len(self)} patches of {self.size}×{self.size} px from {len(self.sources)} "
            "images)"
        )

    @classmethod
    def from_images(
        cls,
        images01: torch.Tensor | Sequence[torch.Tensor],
        *,
        size: int = 8,
        stride: int = 4,
        max_patches: int = 20000,
        sources: Sequence[str] | None = None,
        seed: int = 0,
        normalised: bool = False,
    ) -> PatchDatabase:
        """Patches of images in [0, 1] (``[B, 3, H, W]`` or a list of such), at most ``max_patches`` (random
        subset).

        Each image is normalised by its own global mean and std first
        (:func:`normalize_global`). ``normalised=True``: the images are already
        normalised — pass pieces cut from larger photos this way (e.g.
        :attr:`Retrieval.normalised`, each piece normalised by *its photo's*
        statistics), since normalising every small piece by its own mean and
        std would throw away the colour and brightness that differ between
        the pieces, the very low frequencies the prior is meant to restore.
        """
        batches = [images01] if isinstance(images01, torch.Tensor) else list(images01)
        parts = []
        for b in batches:
            b = b if b.dim() == 4 else b.unsqueeze(0)
            b = b.float() if normalised else normalize_global(b.float())
            parts.append(extract_patches(b, size, stride).reshape(-1, 3 * size * size))
        if not parts:
            raise ValueError("PatchDatabase.from_images needs at least one image.")
        patches = torch.cat(parts)
        if patches.shape[0] > max_patches:
            g = torch.Generator().manual_seed(seed)
            patches = patches[torch.randperm(patches.shape[0], generator=g)[:max_patches]]
        names = (
            list(sources)
            if sources is not None
            else [f"image {i}" for i in range(sum(len(b) for b in batches))]
        )
        return cls(patches.contiguous(), size, stride, names)

    def nearest(self, queries: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """The nearest database patch (L2) for each row of ``queries`` ``[M, D]`` → ``[M, D]``."""
        if queries.shape[-1] != self.patches.shape[1]:
            raise ValueError(
                f"Query patches have {queries.shape[-1]} values; the database holds {self.patches.shape[1]}."
            )
        db = self.patches
        db_sq = db.pow(2).sum(1)
        out = torch.empty_like(queries)
        for i in range(0, queries.shape[0], chunk):
            q = queries[i : i + chunk]
            d = db_sq.unsqueeze(0) - 2.0 * q @ db.T  # ‖q‖² is the same for every candidate
            out[i : i + chunk] = db[d.argmin(1)]
        return out


class PatchPrior(StepOp):
    """Eq. 3's ``Σ_p ‖Ĩ_p − D̃_p‖²``: an objective term plus the discrete matching step.

    Use both halves with the engine::

        prior = PatchPrior(db, mean=info.mean, std=info.std)
        synthesize(model, objective - weight * prior.term(), image_ops=[prior], ...)

    The term is averaged over patches and patch values (so the weight does
    not depend on the image size); the match is refreshed every ``every``
    steps, and lazily on first use.
    """

    def __init__(self, database: PatchDatabase, *, mean, std, every: int = 10):
        if int(every) < 1:
            raise ValueError(f"every must be ≥ 1 step, got {every}.")
        self.db, self.every = database, int(every)
        self.mean, self.std = tuple(mean), tuple(std)
        self.targets: torch.Tensor | None = None
        self.matches = 0

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        img = denormalize(x, mean=self.mean, std=self.std)
        return extract_patches(normalize_global(img), self.db.size, self.db.stride)

    @torch.no_grad()
    def match(self, x: torch.Tensor) -> torch.Tensor:
        """The discrete step: nearest database patch for every patch of ``x`` (normalised model space)."""
        p = self._patches(x.detach())
        self.targets = self.db.nearest(p.reshape(-1, p.shape[-1])).reshape(p.shape)
        self.matches += 1
        return self.targets

    def warped(self, x: torch.Tensor) -> torch.Tensor:
        """The matched patches put back in place (overlaps averaged): the normalised image the prior pulls
        to.
        """
        if self.targets is None or self.targets.shape[0] != x.shape[0]:
            self.match(x)
        h, w = x.shape[-2:]
        s, st = self.db.size, self.db.stride
        num = F.fold(self.targets.transpose(1, 2), (h, w), s, stride=st)
        den = F.fold(torch.ones_like(self.targets).transpose(1, 2), (h, w), s, stride=st)
        return num / den.clamp_min(1)

    def warped_image(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`warped` with ``x``'s own global mean and std put back, in normalised model space (for
        display).
        """
        img = denormalize(x, mean=self.mean, std=self.std)
        flat = img.flatten(1)
        out = self.warped(x) * flat.std(1).view(-1, 1, 1, 1) + flat.mean(1).view(-1, 1, 1, 1)
        return normalize(out.clamp(0, 1), mean=self.mean, std=self.std)

    def term(self) -> Objective:
        """``mean_p ‖Ĩ_p − D̃_p‖²`` over the batch (a penalty: subtract it, times ``R_γ``)."""

        def fn(ctx) -> torch.Tensor:
            x = ctx[INPUT]
            p = self._patches(x)
            if self.targets is None or self.targets.shape != p.shape:
                self.match(x)
            return (p - self.targets).pow(2).mean(dim=(1, 2)).sum()

        return Objective.term("patch_prior", fn, [INPUT])

    def after_step(self, x, grad, step):
        if (step + 1) % self.every == 0:
            self.match(x)


# ---------------------------------------------------------------------------
# Retrieval by conv features (the paper's database for inversion; "[8]+[7]")
# ---------------------------------------------------------------------------


@dataclass
class Retrieval:
    """What :func:`retrieve` found: the averaged image (an initialisation) and the retrieved pixels."""

    average: torch.Tensor  # [1, 3, H, W] in [0, 1]: k-NN patches averaged at each cell
    patches: torch.Tensor  # [cells·k, 3, ph, pw] in [0, 1]: every retrieved cell
    grid: tuple[int, int]
    normalised: (
        torch.Tensor
    )  # [cells·k, 3, ph, pw]: the same cells, each photo normalised globally (Eq. 3's D̃)


def _cells(images01: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Cut ``[N, 3, H, W]`` into the ``gh×gw`` grid of the conv map: ``[N, gh·gw, 3, H/gh, W/gw]``."""
    n, c, h, w = images01.shape
    gh, gw = grid
    ph, pw = h // gh, w // gw
    x = images01[..., : ph * gh, : pw * gw].reshape(n, c, gh, ph, gw, pw)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, c, ph, pw)


@torch.no_grad()
def retrieve(
    model: nn.Module,
    image: torch.Tensor,
    layer: str,
    database: torch.Tensor,
    *,
    k: int = 10,
) -> Retrieval:
    """For each cell of ``layer``'s map of ``image``, the ``k`` database cells with the closest features
    (cosine).

    ``image`` is a normalised ``[1, 3, H, W]`` batch and ``database`` a
    normalised ``[N, 3, H, W]`` batch of *other* photos at the same size
    (never include the image itself). Each cell covers ``H/h × W/w`` pixels
    of a ``h×w`` map. Seed 002: "the averaged patches (10-NN at each pool5
    location) recovers well the color distribution of the input image".
    """
    if database.shape[-2:] != image.shape[-2:]:
        raise ValueError("The database images must have the size of the image to invert.")
    info = model_info(model)
    q = layer_features(model, image, layer)[layer]
    if q.dim() != 4:
        raise ValueError(f"retrieve needs a conv map; layer {layer!r} gives shape {tuple(q.shape)}.")
    feats = torch.cat(
        [layer_features(model, database[i : i + 16], layer)[layer] for i in range(0, len(database), 16)]
    )
    gh, gw = q.shape[-2:]
    qv = F.normalize(q.flatten(2).transpose(1, 2).reshape(-1, q.shape[1]), dim=1)  # [cells, C]
    dv = F.normalize(feats.flatten(2).transpose(1, 2).reshape(-1, feats.shape[1]), dim=1)  # [N·cells, C]
    k = min(int(k), dv.shape[0])
    idx = (qv @ dv.T).topk(k, dim=1).indices  # [cells, k]
    db01 = denormalize(database, mean=info.mean, std=info.std).clamp(0, 1)
    pix = _cells(db01, (gh, gw))
    pix = pix.reshape(-1, *pix.shape[2:])  # [N·cells, 3, ph, pw]
    chosen = pix[idx]  # [cells, k, 3, ph, pw]
    pixn = _cells(normalize_global(db01), (gh, gw))  # normalised by each whole photo's mean and std
    chosen_n = pixn.reshape(-1, *pixn.shape[2:])[idx]
    avg = chosen.mean(1)  # [cells, 3, ph, pw]
    ph, pw = avg.shape[-2:]
    tiled = avg.reshape(gh, gw, 3, ph, pw).permute(2, 0, 3, 1, 4).reshape(1, 3, gh * ph, gw * pw)
    h, w = image.shape[-2:]
    if tiled.shape[-2:] != (h, w):
        tiled = F.interpolate(tiled, size=(h, w), mode="bilinear", align_corners=False)
    return Retrieval(tiled, chosen.reshape(-1, 3, ph, pw), (gh, gw), chosen_n.reshape(-1, 3, ph, pw))
