"""ipywidgets front ends for the notebooks: pickers, sliders and a live optimisation view.

Widgets only arrange controls and call the library; the computation lives
in the topic modules, so everything a widget shows can also be produced
by a plain function call (and is tested that way).
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Layer / channel / photo explorers (notebooks 01–02)
# ---------------------------------------------------------------------------


def _show_figure(out, fig) -> None:
    """Replace what ``out`` shows by ``fig`` and close it (no figure piles up in pyplot)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    with out:
        out.clear_output(wait=True)
        display(fig)
    plt.close(fig)


def default_layers(model) -> list[str]:
    """Layers with C×H×W outputs that a student can pick, in forward order.

    Top-level layers, with long sequences (more than 4 children) opened up: ``stem``,
    ``blocks.0`` … ``blocks.15``, ``head`` for the bundled model; ``features.N`` for
    SqueezeNet/AlexNet/VGG; ``conv1`` … ``layer4`` for ResNet.
    """
    from torch import nn

    from .models import list_layers

    # feature maps only: C×H×W with more than one position (global pools are left out)
    shapes = {r.name: r.shape for r in list_layers(model, depth=2) if len(r.shape) == 3 and r.shape[1] > 1}
    names = []
    for name, module in model.named_children():
        children = [f"{name}.{c}" for c, _ in module.named_children()]
        if isinstance(module, nn.Sequential) and len(children) > 4:
            names += [c for c in children if len(shapes.get(c, ())) == 3]
        elif len(shapes.get(name, ())) == 3:
            names.append(name)
    return names


def activation_explorer(
    model, photos=None, layers=None, *, size: int = 224, ncols: int = 16, max_channels: int = 64
):
    """Layer dropdown, channel slider and photo picker over the feature maps of a photo (notebook 01).

    Shows the chosen channel over the photo (aligned by the receptive-field arithmetic,
    :func:`introspect_lab.plotting.plot_activation_overlay`) and the grid of the layer's
    first ``max_channels`` channels with the chosen one framed. Maps are computed with
    :func:`introspect_lab.features.activation_maps` and cached per (photo, layer).
    Returns the widget box (display it, or make it the cell's last expression).
    """
    import ipywidgets as widgets

    from .features import activation_maps
    from .images import load_image, sample_image, sample_names
    from .plotting import plot_activation_grid, plot_activation_overlay

    photos = list(photos) if photos is not None else sample_names()
    layers = list(layers) if layers is not None else default_layers(model)
    if not photos or not layers:
        raise ValueError("activation_explorer needs at least one photo and one layer.")
    cache: dict = {}

    def maps_for(photo: str, layer: str):
        if (photo, layer) not in cache:
            x = load_image(sample_image(photo), model, size=size)
            cache[(photo, layer)] = (x, activation_maps(model, x, layer))
        return cache[(photo, layer)]

    photo_w = widgets.Dropdown(options=photos, value=photos[0], description="photo")
    layer_w = widgets.Dropdown(options=layers, value=layers[min(3, len(layers) - 1)], description="layer")
    channel_w = widgets.IntSlider(value=0, min=0, max=1, description="channel", continuous_update=False)
    overlay_out, grid_out = widgets.Output(), widgets.Output()
    busy = []

    def draw(*_):
        if busy:  # setting the slider's max below its value re-triggers draw: ignore that
            return
        busy.append(1)
        try:
            _draw()
        finally:
            busy.clear()

    def _draw():
        x, maps = maps_for(photo_w.value, layer_w.value)
        channel_w.max = maps.shape[0] - 1
        c = channel_w.value
        title = f"{layer_w.value}, channel {c} of {maps.shape[0]} ({maps.shape[1]}×{maps.shape[2]})"
        _show_figure(
            overlay_out, plot_activation_overlay(x, maps[c], model=model, layer=layer_w.value, title=title)
        )
        shown = range(min(maps.shape[0], max_channels))
        grid = plot_activation_grid(maps, channels=shown, ncols=ncols, highlight=c,
                                    title=f"{layer_w.value}: first {len(shown)} of {maps.shape[0]} channels")  # fmt: skip
        _show_figure(grid_out, grid)

    for w in (photo_w, layer_w, channel_w):
        w.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([photo_w, layer_w, channel_w]), overlay_out, grid_out])


def patch_explorer(model, pool, layers=None, *, k: int = 8, batch_size: int = 16):
    """Layer dropdown and channel slider over the maximally activating patches of a pool (notebook 02).

    One :func:`introspect_lab.features.channel_maxima` pass per layer (cached) gives every
    channel's top-``k`` patches at once, so moving the slider does not run the pool again.
    ``pool`` is an :class:`~introspect_lab.datasets.ImagePool` or a normalised batch.
    """
    import ipywidgets as widgets

    from .features import channel_maxima, top_patches
    from .plotting import plot_patches

    layers = list(layers) if layers is not None else default_layers(model)[:8]
    if not layers:
        raise ValueError("patch_explorer needs at least one layer.")
    labels = [pool.label_of(i) for i in range(len(pool))] if hasattr(pool, "label_of") else None
    cache: dict = {}

    layer_w = widgets.Dropdown(options=layers, value=layers[min(2, len(layers) - 1)], description="layer")
    channel_w = widgets.IntSlider(value=0, min=0, max=1, description="channel", continuous_update=False)
    out = widgets.Output()
    busy = []

    def draw(*_):
        if busy:  # setting the slider's max below its value re-triggers draw: ignore that
            return
        busy.append(1)
        try:
            _draw()
        finally:
            busy.clear()

    def _draw():
        layer = layer_w.value
        if layer not in cache:
            cache[layer] = channel_maxima(model, pool, layer, batch_size=batch_size)
        maxima = cache[layer]
        n_channels = maxima.values.shape[1]
        channel_w.max = n_channels - 1
        c = channel_w.value
        patches = top_patches(model, pool, layer, c, k=k, maxima=maxima)
        _show_figure(
            out, plot_patches(patches, labels=labels, title=f"{layer}, channel {c}: top {k} patches")
        )

    layer_w.observe(draw, names="value")
    channel_w.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([layer_w, channel_w]), out])


# ---------------------------------------------------------------------------
# Attribution explorer (notebook 03)
# ---------------------------------------------------------------------------


def attribution_explorer(model, photos=None, *, layers=None, size: int | None = None):
    """Pick a photo, a target class (its top-5 or a typed name) and a Grad-CAM layer; see the maps.

    Shows the photo with its saliency, Grad-CAM at the chosen layer and
    guided Grad-CAM (all from :mod:`introspect_lab.attribution`). A typo in
    the class name is shown with the library's suggestion. Returns the widget.
    """
    import ipywidgets as widgets

    from . import attribution as A
    from .images import load_image, sample_image
    from .models import class_index, model_info, predict
    from .plotting import attribution_grid

    photos = list(photos or ["chelsea", "coffee", "rocket", "astronaut", "motorcycle", "china", "flower"])
    layers = list(layers or default_layers(model))
    cats = model_info(model).categories
    photo_w = widgets.Dropdown(options=photos, value=photos[0], description="photo")
    class_w = widgets.Dropdown(options=[], description="class")
    typed_w = widgets.Text(value="", placeholder="or type a class name", description="name")
    default_layer = A.last_conv_layer(model)
    layer_w = widgets.Dropdown(
        options=layers, value=default_layer if default_layer in layers else layers[-1], description="layer"
    )
    out = widgets.Output()
    state = {}

    def load(_=None):
        x = load_image(sample_image(photo_w.value), model, size=size)
        state["x"] = x
        top = predict(model, x, k=5)[0]
        state["busy"] = True
        class_w.options = [(f"{p.name} ({p.prob:.2f})", p.index) for p in top]
        class_w.value = top[0].index
        state["busy"] = False
        draw()

    def draw(_=None):
        if state.get("busy"):
            return
        try:
            target = class_index(model, typed_w.value) if typed_w.value.strip() else class_w.value
            x = state["x"]
            maps = {
                "saliency": A.saliency(model, x, target),
                f"Grad-CAM {layer_w.value}": A.grad_cam(model, x, target, layer=layer_w.value),
                "guided Grad-CAM": A.guided_grad_cam(model, x, target, layer=layer_w.value),
            }
            fig = attribution_grid(x, maps, model=model, row_titles=[cats[target][:24]])
            _show_figure(out, fig)
        except Exception as exc:  # shown in the widget; the kernel keeps going
            with out:
                out.clear_output(wait=True)
                print(exc)

    photo_w.observe(load, names="value")
    class_w.observe(draw, names="value")
    typed_w.observe(draw, names="value")
    layer_w.observe(draw, names="value")
    load()
    return widgets.VBox([widgets.HBox([photo_w, class_w]), widgets.HBox([typed_w, layer_w]), out])


# ---------------------------------------------------------------------------
# Live optimisation (notebooks 05–08)
# ---------------------------------------------------------------------------
