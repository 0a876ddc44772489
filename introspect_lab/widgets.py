"""ipywidgets front ends for the notebooks: pickers, sliders and a live optimisation view.

Widgets only arrange controls and call the library; the computation lives
in the topic modules, so everything a widget shows can also be produced
by a plain function call (and is tested that way).
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from functools import wraps

from . import adversarial
from . import attribution as A
from .attribution.plots import attribution_grid
from .features import activation_maps, channel_maxima, top_patches
from .images import load_image, sample_image, sample_names, to_display, to_pil
from .lazy import lazy_import
from .models import class_index, list_layers, model_info, predict
from .plotting import (
    plot_activation_grid,
    plot_activation_overlay,
    plot_patches,
    plot_predictions,
)

widgets = lazy_import("ipywidgets")


def _not_reentrant(fn: Callable) -> Callable:
    """Ignore calls made while ``fn`` is running.

    A redraw that sets a slider's ``max`` below its value changes the value,
    which fires the same observer again; the nested call is dropped.
    """
    running = False

    @wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal running
        if running:
            return None
        running = True
        try:
            return fn(*args, **kwargs)
        finally:
            running = False

    return wrapper


# ---------------------------------------------------------------------------
# Layer / channel / photo explorers (notebooks 01–02)
# ---------------------------------------------------------------------------


def _figure_view():
    """An ``ipywidgets.Image`` that shows a figure as PNG (see :func:`_show_figure`)."""
    return widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))


def _show_figure(view, fig) -> None:
    """Show ``fig`` in the Image widget ``view`` and close it (no figure piles up in pyplot).

    A figure is drawn to PNG bytes and set as the widget's value: one state update from the
    kernel, nothing sent back. An ``Output`` widget (``with out: clear_output(wait=True);
    display(fig)``) is not used: a headless client (nbclient, ``jupyter nbconvert --execute``)
    mimics an Output widget by sending each captured output back to the kernel on the shell
    channel while it waits on that same socket for the cell's reply, and such a wait can miss
    the reply and never end (nbclient #312), which stalled notebook 03 after its explorer cell.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    view.value = buf.getvalue()


def _show_error(label, exc: Exception | None) -> None:
    """Show ``exc`` (or nothing) in the HTML widget ``label``; the kernel keeps going."""
    label.value = "" if exc is None else f"<pre style='color:#b00'>{html.escape(str(exc))}</pre>"


def default_layers(model) -> list[str]:
    """Layers with C×H×W outputs that a student can pick, in forward order.

    Top-level layers, with long sequences (more than 4 children) opened up: ``stem``,
    ``blocks.0`` … ``blocks.15``, ``head`` for the bundled model; ``features.N`` for
    SqueezeNet/AlexNet/VGG; ``conv1`` … ``layer4`` for ResNet.
    """
    from torch import nn

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
    overlay_out, grid_out = _figure_view(), _figure_view()

    @_not_reentrant
    def draw(*_):
        x, maps = maps_for(photo_w.value, layer_w.value)
        channel_w.max = maps.shape[0] - 1
        c = channel_w.value
        title = f"{layer_w.value}, channel {c} of {maps.shape[0]} ({maps.shape[1]}×{maps.shape[2]})"
        _show_figure(
            overlay_out, plot_activation_overlay(x, maps[c], model=model, layer=layer_w.value, title=title)
        )
        shown = range(min(maps.shape[0], max_channels))
        grid = plot_activation_grid(
            maps,
            channels=shown,
            ncols=ncols,
            highlight=c,
            title=f"{layer_w.value}: first {len(shown)} of {maps.shape[0]} channels",
        )
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
    layers = list(layers) if layers is not None else default_layers(model)[:8]
    if not layers:
        raise ValueError("patch_explorer needs at least one layer.")
    labels = [pool.label_of(i) for i in range(len(pool))] if hasattr(pool, "label_of") else None
    cache: dict = {}

    layer_w = widgets.Dropdown(options=layers, value=layers[min(2, len(layers) - 1)], description="layer")
    channel_w = widgets.IntSlider(value=0, min=0, max=1, description="channel", continuous_update=False)
    out = _figure_view()

    @_not_reentrant
    def draw(*_):
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
    photos = list(photos or ["chelsea", "coffee", "rocket", "astronaut", "motorcycle", "china", "flower"])
    layers = list(layers or default_layers(model))
    cats = model_info(model).categories
    photo_w = widgets.Dropdown(options=photos, value=photos[0], description="photo")
    class_w = widgets.Dropdown(options=[], description="class")
    typed_w = widgets.Text(value="", placeholder="or type a class name", description="name")
    default_layer = A.cam_layer(model)
    layer_w = widgets.Dropdown(
        options=layers, value=default_layer if default_layer in layers else layers[-1], description="layer"
    )
    out, message = _figure_view(), widgets.HTML()
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
            _show_error(message, None)
        except Exception as exc:  # shown in the widget; the kernel keeps going
            _show_error(message, exc)

    photo_w.observe(load, names="value")
    class_w.observe(draw, names="value")
    typed_w.observe(draw, names="value")
    layer_w.observe(draw, names="value")
    load()
    return widgets.VBox([widgets.HBox([photo_w, class_w]), widgets.HBox([typed_w, layer_w]), message, out])


# ---------------------------------------------------------------------------
# Live optimisation (notebooks 05–08)
# ---------------------------------------------------------------------------


class LiveOptimization:
    """A live view of an optimisation: controls bound to its parameters, a refreshing preview, stop/restart.

    ``run(size=, steps=, callback=, progress=False, **params)`` is any
    synthesis method (:func:`~introspect_lab.synthesis.visualize_class`,
    :func:`~introspect_lab.texture.gatys.style_transfer`, a ``synthesize`` call, …)
    with the model and images bound, e.g.
    ``lambda **kw: visualize_class(model, "tabby", **kw)``. ``controls`` maps
    each keyword of ``run`` to an ipywidgets control (slider, dropdown), or
    to a *group*: a dict ``{key: control}`` whose value reaches ``run`` as
    ``{key: value}`` (one weight per style layer:
    ``{"style_weights": {layer: slider, ...}}`` gives
    ``style_transfer(..., style_weights={layer: w, ...})``). Keywords are the
    parameter names of the method, which are the field names of its registry
    settings (:mod:`introspect_lab.settings`): a slider's value can be
    followed by name from the widget to the loss.

    Changing a control stops the current run and starts again by
    *progressive refinement*: first ``preview_steps`` steps at
    ``preview_size`` px (a new preview within about a second), then the
    full ``steps`` at ``size`` px. The optimisation runs in a background
    thread in short chunks between previews, so the kernel stays free; the
    stop flag is checked at every preview. ``stop()`` ends the thread and
    leaves no hook behind (the engine removes its hooks on every exit).
    """

    def __init__(
        self,
        run,
        controls: dict | None = None,
        *,
        size: int = 128,
        steps: int = 100,
        preview_size: int = 64,
        preview_steps: int = 10,
        every: int = 5,
        autostart: bool = True,
        title: str = "",
    ):
        import threading

        if not callable(run):
            raise TypeError(
                "run must be a callable such as lambda **kw: visualize_class(model, 'tabby', **kw)."
            )
        for name, group in (controls or {}).items():
            for key, c in group.items() if isinstance(group, dict) else [(None, group)]:
                if not hasattr(c, "observe") or not hasattr(c, "value"):
                    label = name if key is None else f"{name}[{key!r}]"
                    raise TypeError(
                        f"Control {label} must be an ipywidgets control with a .value, got {c!r}."
                    )
        self.run_fn = run
        self.controls = dict(controls or {})
        self.size, self.steps = int(size), int(steps)
        self.preview_size, self.preview_steps, self.every = int(preview_size), int(preview_steps), int(every)
        self.image = widgets.Image(format="png", width=256, height=256)
        self.status = widgets.Label(value="ready")
        self.stop_button = widgets.Button(description="Stop", icon="stop")
        self.restart_button = widgets.Button(description="Restart", icon="refresh")
        self.stop_button.on_click(lambda _: self.stop())
        self.restart_button.on_click(lambda _: self.restart())
        for c in self._widgets():
            c.observe(self._on_change, names="value")
        head = [widgets.HTML(f"<b>{title}</b>")] if title else []
        self.widget = widgets.VBox(
            head
            + [
                widgets.HBox([widgets.VBox(self._widgets()), self.image]),
                widgets.HBox([self.stop_button, self.restart_button, self.status]),
            ]
        )
        self.previews = 0
        self.result = None
        self.error: BaseException | None = None
        self.last_change = None
        self.first_preview_after_change: float | None = None
        self._threading = threading
        self._thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if autostart:
            self.restart()

    # --- public -------------------------------------------------------
    @property
    def params(self) -> dict:
        """The current control values, as keyword arguments of ``run`` (a group gives a dict)."""
        return {
            k: {key: c.value for key, c in g.items()} if isinstance(g, dict) else g.value
            for k, g in self.controls.items()
        }

    def _widgets(self) -> list:
        """Every control, groups opened, in order."""
        out = []
        for g in self.controls.values():
            out += list(g.values()) if isinstance(g, dict) else [g]
        return out

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def restart(self) -> None:
        """Stop any run and start again from the current control values."""
        import time

        self.stop()
        self._stop = self._threading.Event()
        self.last_change = time.perf_counter()
        self.first_preview_after_change = None
        self.error = None
        self._thread = self._threading.Thread(target=self._work, args=(self._stop, self.params), daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the run to stop at its next preview and wait for the thread to end."""
        self._stop.set()
        t = self._thread
        if t is not None and t.is_alive():
            t.join(timeout)
        self._thread = None

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the current run ends (for scripts and tests); True if it ended."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # --- internals ----------------------------------------------------
    def _on_change(self, change) -> None:
        self.restart()

    def _show(self, x) -> None:
        import io
        import time

        buf = io.BytesIO()
        to_pil(x[:1]).resize((256, 256)).save(buf, format="png")
        with self._lock:
            self.image.value = buf.getvalue()
            self.previews += 1
            if self.first_preview_after_change is None and self.last_change is not None:
                self.first_preview_after_change = time.perf_counter() - self.last_change

    def _work(self, stop, params) -> None:
        stages = [(self.preview_size, self.preview_steps), (self.size, self.steps)]
        if self.preview_size >= self.size:
            stages = stages[1:]
        try:
            for i, (size, steps) in enumerate(stages):
                if stop.is_set():
                    return
                self.status.value = f"{'preview' if i == 0 and len(stages) > 1 else 'refining'} at {size} px…"

                def cb(state, size=size):
                    self._show(state.image)
                    self.status.value = (
                        f"{size} px: step {state.step}/{state.steps}, objective {state.value:.4g}"
                    )
                    return stop.is_set()

                res = self.run_fn(
                    size=size,
                    steps=steps,
                    callback=cb,
                    every=min(self.every, steps),
                    progress=False,
                    **params,
                )
                self.result = res
            if not stop.is_set():
                self.status.value = f"done: {self.size} px, {self.steps} steps"
        except Exception as exc:  # shown in the widget; the kernel keeps going
            self.error = exc
            self.status.value = f"error: {exc}"


# ---------------------------------------------------------------------------
# Adversarial ε slider (notebook 09)
# ---------------------------------------------------------------------------


def attack_explorer(model, x, target=None, *, eps_max: float = 8.0, attack: str = "fgsm", k: int = 5):
    """An ε slider (in grey levels) over one photo: the attacked image, 10× difference and top-``k`` update
    live.

    ``attack`` is ``"fgsm"`` or ``"pgd"`` (:mod:`introspect_lab.adversarial`),
    untargeted against ``target`` (default the model's prediction) or, with the
    "targeted" box, towards the class typed in. Returns the widget box.
    """
    x = x[:1]
    eps_w = widgets.FloatSlider(
        value=1.0, min=0.0, max=float(eps_max), step=0.25, description="ε (/255)", continuous_update=False
    )
    attack_w = widgets.Dropdown(options=["fgsm", "pgd"], value=attack, description="attack")
    goal_w = widgets.Text(value="", placeholder="class name: targeted", description="target")
    out, message = _figure_view(), widgets.HTML()
    state: dict = {}

    @_not_reentrant
    def draw(*_):
        try:
            eps = eps_w.value / 255
            goal = goal_w.value.strip()
            targeted = bool(goal)
            tgt = class_index(model, goal) if targeted else target
            fn = adversarial.fgsm if attack_w.value == "fgsm" else adversarial.pgd
            adv = x if eps == 0 else fn(model, x, tgt, eps=eps, targeted=targeted)
            state["adv"] = adv
            preds = predict(model, x, k) + predict(model, adv, k)
            mag = (0.5 + 10 * (to_display(adv, model) - to_display(x, model))).clip(0, 1)
            title = f"{attack_w.value}, ε = {eps_w.value:g}/255" + (f" → {goal}" if targeted else "")
            fig = plot_predictions(
                [x[0], adv[0], mag],
                preds + preds[1:],
                model=model,
                titles=["original", title, "10× difference"],
            )
            fig.axes[5].set_visible(False)  # the difference has no top-k of its own
            _show_figure(out, fig)
            _show_error(message, None)
        except Exception as exc:  # shown in the widget; the kernel keeps going
            _show_error(message, exc)

    for w in (eps_w, attack_w, goal_w):
        w.observe(draw, names="value")
    draw()
    box = widgets.VBox([widgets.HBox([eps_w, attack_w, goal_w]), message, out])
    box.state = state
    return box
