"""Widget cells executed headless (nbclient, as ``jupyter nbconvert --execute`` runs them) never stall.

The stall this guards against (notebook 03, after its attribution explorer): nbclient mimics an
``ipywidgets.Output`` in the client. Every output captured by an Output widget makes the client
send a ``comm_msg`` back to the kernel on the shell channel, while another of its tasks waits on
that same socket for the cell's ``execute_reply``; that wait can miss the reply and last forever
(nbclient #312), with the kernel idle and the next cell never sent. The explorers therefore show
their figures in ``Image`` widgets: the client has nothing to send back. The test runs the
explorer cells in a real kernel with a per-cell time limit (a stall fails in seconds) and checks
that the client sent no ``comm_msg`` (the precondition of the stall) and that the figures arrived.
"""

from __future__ import annotations

import base64
import html

import nbformat
import pytest
from nbclient import NotebookClient

SETUP = """\
from introspect_lab import load_image, load_model, sample_image
from introspect_lab.widgets import activation_explorer, attack_explorer, attribution_explorer
model = load_model("efficientnet_lite0", verbose=False)
"""
EXPLORERS = {
    "attribution": 'attribution_explorer(model, photos=["chelsea", "coffee"], size=64)',
    "activation": 'activation_explorer(model, photos=["chelsea"], layers=["stem", "blocks.3"], size=64)',
    "attack": 'attack_explorer(model, load_image(sample_image("chelsea"), model, size=64), eps_max=2.0)',
}


def test_explorer_cells_send_nothing_back_and_the_next_cell_runs():
    cells = [SETUP, *EXPLORERS.values(), "print('the next cell ran')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    # a few seconds each on an idle machine; the limits leave room for a loaded one (importing torch)
    limit = {id(nb.cells[0]): 300}
    client = NotebookClient(
        nb, timeout_func=lambda cell: limit.get(id(cell), 120), kernel_name="python3", startup_timeout=120
    )
    sent_back = []
    with client.setup_kernel():
        send = client.kc.shell_channel.send

        def spy(msg):  # the client's own requests go this way too; comm_msg is the Output mimic's
            if msg.get("header", {}).get("msg_type") == "comm_msg":
                sent_back.append(msg["content"]["data"])
            return send(msg)

        client.kc.shell_channel.send = spy
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)
    assert nb.cells[-1].outputs[0]["text"] == "the next cell ran\n"
    assert not sent_back, f"the client answered {len(sent_back)} widget update(s) on the shell channel"
    # every explorer's figures arrived, as PNG in Image widgets
    images = [
        base64.b64decode(b["data"])
        for comm, state in client.widget_state.items()
        if state.get("_model_name") == "ImageModel"
        for path, b in client.widget_buffers.get(comm, {}).items()
        if path == ("value",)
    ]
    assert len(images) >= 4  # attribution 1, activation 2 (overlay + grid), attack 1
    assert all(png.startswith(b"\x89PNG") and len(png) > 5_000 for png in images)


def test_a_typo_in_the_explorer_is_shown_not_raised(lite0):
    from introspect_lab.models import class_index
    from introspect_lab.widgets import attribution_explorer

    box = attribution_explorer(lite0, photos=["chelsea"], size=32)
    typed_w = box.children[1].children[0]
    message, view = box.children[2], box.children[3]
    before = bytes(view.value)
    assert before.startswith(b"\x89PNG") and message.value == ""
    typed_w.value = "tabyy"
    with pytest.raises(Exception) as err:
        class_index(lite0, "tabyy")
    assert message.value.startswith("<pre") and html.escape(str(err.value)) in message.value
    assert bytes(view.value) == before  # the last good figure stays
    typed_w.value = "tabby"
    assert message.value == "" and bytes(view.value) != before
