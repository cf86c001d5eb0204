"""LSTM layers for HR-VAE that return every step's cell state c_t, and the choice of how to run them.

HR-VAE needs `[h_t; c_t]` of every encoder layer at every step, which `nn.LSTM` does not return (it gives h_t for
all t and c only for the last step). Two exact ways to get it:

- **library** (cuDNN on a GPU, oneDNN under CPU autocast): the fused `nn.LSTM`, then every c_t recovered from its
  inputs and outputs by recomputing the i, f, g gates at once and solving `c_t = f_t c_{t-1} + i_t g_t` with a
  parallel scan ([`lstm_cell_states`]). Few, large operations: what a GPU, bound by launching kernels, needs.
- **stepwise** (on the CPU without autocast): [`lstm_layer`], whose autograd function keeps c_t as it runs
  the recurrence: the input projections of all steps and the weight gradients are single large matrix products
  and only the recurrent `h_{t-1} W_hh` products and the element-wise cell maths go step by step. No gate is
  computed twice, and the decoder's first layer can add the part of its input that does not change over time
  (z) once per sentence instead of once per token. On a CPU, where each operation is cheap to launch and the
  arithmetic is the cost, this does less work than the library path. (The decoder takes it in training, and for
  its first layer when it decodes one sentence for many latents.)

[`use_stepwise_lstm`] decides; both paths give the same values and gradients (`tests/test_recurrence.py`).
Only torch here (the file travels with saved models for `trust_remote_code`).
Shapes: B = batch, T = steps, H = hidden size, `I` = input size.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

# None: decide per call (see use_stepwise_lstm); True / False: force one path (tests, benchmarks).
FORCE_STEPWISE: bool | None = None


def use_stepwise_lstm(inputs: torch.Tensor, training_only: bool = False) -> bool:
    """Whether [`lstm_layer`] (stepwise) should run instead of the fused library LSTM on `inputs (B, T, I)`: on the
    CPU without autocast; with `training_only` (the decoder) also only for sequences (T > 1) with gradients, where
    its backward pass saves the most; one step (generation) or a pass without gradients (evaluation) is as fast or
    faster with nn.LSTM's fused kernel (docs/performance.md). [`forced_lstm_path`] overrides all of this.

    On CUDA the fused cuDNN LSTM with the parallel-scan recovery issues far fewer kernel launches. Under CPU
    autocast the library path keeps oneDNN's bf16 LSTM, the one measured and tested for bf16 training (the
    stepwise path under autocast is not).
    """
    if FORCE_STEPWISE is not None:
        return FORCE_STEPWISE
    if inputs.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
        return False
    return not training_only or (inputs.shape[1] > 1 and torch.is_grad_enabled())


@contextlib.contextmanager
def forced_lstm_path(stepwise: bool | None):
    """Inside the block, run the stepwise (`True`) or the library (`False`) path wherever
    [`use_stepwise_lstm`] decides (encoder and decoder, with or without gradients); `None` restores the automatic
    choice. Not thread-safe (a module setting)."""
    global FORCE_STEPWISE
    saved, FORCE_STEPWISE = FORCE_STEPWISE, stepwise
    try:
        yield
    finally:
        FORCE_STEPWISE = saved


def linear_recurrence(decay: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """Solve `c_t = decay_t * c_{t-1} + drive_t` with `c_{-1} = 0` along dim 1 by a parallel (Hillis-Steele) scan.

    `ceil(log2 T)` tensor steps instead of T Python steps; only products of values in (0, 1) and sums, so it is as
    stable as the sequential loop. Shapes: `(B, T, H), (B, T, H) -> (B, T, H)`.
    """
    length = drive.shape[1]
    shift = 1
    while shift < length:
        # positions t < shift have no partner t - shift: padding with 0 (drive) and 1 (decay) leaves them as they are
        drive = drive + decay * F.pad(drive[:, :-shift], (0, 0, shift, 0))
        if 2 * shift < length:  # the last round's decay is never used
            decay = decay * F.pad(decay[:, :-shift], (0, 0, shift, 0), value=1.0)
        shift *= 2
    return drive


def lstm_cell_states(lstm: nn.LSTM, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Recover every cell state c_t of a one-layer, zero-initialised `nn.LSTM` from its inputs and hidden states.

    The input, forget and cell gates of every step are recomputed at once from (x_t, h_{t-1}); then
    `c_t = f_t * c_{t-1} + i_t * g_t` is a linear recurrence solved by [`linear_recurrence`].
    Shapes: `inputs (B, T, I)`, `hidden (B, T, H) -> (B, T, H)`.
    """
    previous = F.pad(hidden[:, :-1], (0, 0, 1, 0))  # h_{t-1}, with h_{-1} = 0
    rows = 3 * lstm.hidden_size  # PyTorch's gate order is i, f, g, o: the output gate is not needed for c
    gates = F.linear(inputs, lstm.weight_ih_l0[:rows], lstm.bias_ih_l0[:rows]) + F.linear(
        previous, lstm.weight_hh_l0[:rows], lstm.bias_hh_l0[:rows]
    )
    input_gate, forget_gate, cell_gate = gates.chunk(3, dim=-1)
    return linear_recurrence(torch.sigmoid(forget_gate), torch.sigmoid(input_gate) * torch.tanh(cell_gate))


def run_recurrence(input_gates, weight_hh, h0, c0, keep_activations: bool = True):
    """The LSTM recurrence from precomputed input gates: `hidden, cell (B, T, H)` and, with `keep_activations`,
    `tanh(cell) (B, T, H)` and the gate activations `(B, T, 4H)` (sigmoid of i, f, o; tanh of g) for the backward
    pass. Without it (inference) the activations live in one step's scratch space, which saves a pass over
    `(B, T, 4H)` of memory.

    `input_gates = x W_ih^T + b_ih + b_hh` `(B, T, 4H)` in PyTorch's gate order (i, f, g, o); `weight_hh (4H, H)`;
    `h0, c0 (B, H)`.
    """
    batch, length, width = input_gates.shape
    size = width // 4
    hidden = input_gates.new_empty(batch, length, size)
    cell = input_gates.new_empty(batch, length, size)
    kept = length if keep_activations else 1  # without: every step writes slot 0
    tanh_cell = input_gates.new_empty(batch, kept, size)
    gates = input_gates.new_empty(batch, kept, width)
    preactivation = input_gates.new_empty(batch, width)
    recurrent = weight_hh.t()
    h, c = h0, c0
    for t in range(length):
        slot = t if keep_activations else 0
        torch.addmm(input_gates[:, t], h, recurrent, out=preactivation)
        step = gates[:, slot]
        torch.sigmoid(preactivation, out=step)
        torch.tanh(preactivation[:, 2 * size : 3 * size], out=step[:, 2 * size : 3 * size])
        torch.mul(step[:, size : 2 * size], c, out=cell[:, t])
        c = cell[:, t]
        c.addcmul_(step[:, :size], step[:, 2 * size : 3 * size])
        torch.tanh(c, out=tanh_cell[:, slot])
        torch.mul(step[:, 3 * size :], tanh_cell[:, slot], out=hidden[:, t])
        h = hidden[:, t]
    return (hidden, cell, tanh_cell, gates) if keep_activations else (hidden, cell)


class LSTMRecurrence(torch.autograd.Function):
    """[`run_recurrence`] with its backward pass written by hand (BPTT).

    `forward(input_gates (B, T, 4H), weight_hh (4H, H), h0 (B, H), c0 (B, H)) -> hidden, cell (B, T, H)`. The
    backward pass goes back over the steps once for the recurrent gradient, then forms the weight gradient as one
    matrix product.
    """

    @staticmethod
    def forward(ctx, input_gates, weight_hh, h0, c0):
        hidden, cell, tanh_cell, gates = run_recurrence(input_gates, weight_hh, h0, c0)
        ctx.set_materialize_grads(False)  # unused outputs (often the cell states) cost nothing in backward
        ctx.save_for_backward(weight_hh, h0, c0, hidden, cell, tanh_cell, gates)
        return hidden, cell

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hidden, grad_cell):
        weight_hh, h0, c0, hidden, cell, tanh_cell, gates = ctx.saved_tensors
        batch, length, size = hidden.shape
        input_gate, forget_gate, cell_gate, output_gate = gates.chunk(4, dim=-1)
        previous_cell = torch.cat([c0.unsqueeze(1), cell[:, :-1]], dim=1)
        # Derivatives of the gates that do not depend on the incoming gradient, for all steps at once:
        # d(i, f, g)/dc_t (times dc_t below) and d o / dh_t (times dh_t), and d c_t / d h_t through h = o tanh(c).
        cell_factors = torch.cat(
            [
                cell_gate * input_gate * (1 - input_gate),
                previous_cell * forget_gate * (1 - forget_gate),
                input_gate * (1 - cell_gate * cell_gate),
            ],
            dim=-1,
        ).view(batch, length, 3, size)
        output_factor = tanh_cell * output_gate * (1 - output_gate)
        hidden_to_cell = output_gate * (1 - tanh_cell * tanh_cell)

        grad_gates = hidden.new_empty(batch, length, 4 * size)
        grad_gates_split = grad_gates.view(batch, length, 4, size)
        dh = hidden.new_zeros(batch, size)
        dc = hidden.new_zeros(batch, size)
        for t in range(length - 1, -1, -1):
            if t + 1 < length:
                torch.mm(grad_gates[:, t + 1], weight_hh, out=dh)  # through h_t -> gates_{t+1}
                dc.mul_(forget_gate[:, t + 1])  # through c_t -> c_{t+1}
            if grad_hidden is not None:
                dh.add_(grad_hidden[:, t])
            if grad_cell is not None:
                dc.add_(grad_cell[:, t])
            dc.addcmul_(dh, hidden_to_cell[:, t])
            torch.mul(cell_factors[:, t], dc.unsqueeze(1), out=grad_gates_split[:, t, :3])
            torch.mul(dh, output_factor[:, t], out=grad_gates_split[:, t, 3])

        grad_weight = grad_h0 = grad_c0 = None
        if ctx.needs_input_grad[1]:
            previous_hidden = torch.cat([h0.unsqueeze(1), hidden[:, :-1]], dim=1)
            grad_weight = grad_gates.flatten(0, 1).t() @ previous_hidden.flatten(0, 1)
        if ctx.needs_input_grad[2]:
            grad_h0 = grad_gates[:, 0] @ weight_hh
        if ctx.needs_input_grad[3]:
            grad_c0 = dc * forget_gate[:, 0]
        return grad_gates, grad_weight, grad_h0, grad_c0


def lstm_layer(
    lstm: nn.LSTM,
    inputs: torch.Tensor,
    layer: int = 0,
    state: tuple[torch.Tensor, torch.Tensor] | None = None,
    extra_gates: torch.Tensor | None = None,
    input_columns: slice | None = None,
    repeats: int = 1,
):
    """Layer `layer` of `lstm` (batch_first) run stepwise, returning every hidden and cell state.

    Args:
        inputs: `(B, T, I)`, or the first `input_columns` of the layer's input when `extra_gates` adds the rest.
        state: `(h0, c0)`, each `(B * repeats, H)`; zeros when omitted.
        extra_gates: `(B * repeats, 4H)` added to every step's gates: the input part that does not change over
            time, already multiplied by its columns of `weight_ih` (the decoder's z), computed once per sentence.
        input_columns: the columns of `weight_ih` that `inputs` multiplies (all by default).
        repeats: each row of `inputs` stands for `repeats` consecutive rows of the output, which differ only by
            their `extra_gates` and `state` (importance sampling: K latents decoding one sentence); its gates are
            computed once.
    Returns: `hidden, cell`, each `(B * repeats, T, H)`.
    """
    if lstm.bidirectional or lstm.proj_size or not lstm.batch_first or not lstm.bias:
        raise ValueError(
            f"lstm_layer runs one-directional, batch_first nn.LSTMs with biases and without projections, got {lstm} "
            f"(bidirectional={lstm.bidirectional}, proj_size={lstm.proj_size}, batch_first={lstm.batch_first}, "
            f"bias={lstm.bias})."
        )
    weight_ih = getattr(lstm, f"weight_ih_l{layer}")
    if input_columns is not None:
        weight_ih = weight_ih[:, input_columns]
    bias = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
    if repeats > 1:
        if extra_gates is None:
            raise ValueError("lstm_layer: repeats > 1 needs the extra_gates that tell the repeated rows apart.")
        shared = F.linear(inputs, weight_ih).unsqueeze(1)  # (B, 1, T, 4H): once per row of inputs
        input_gates = (shared + (extra_gates + bias).view(inputs.shape[0], repeats, 1, -1)).flatten(0, 1)
    elif extra_gates is not None:
        input_gates = F.linear(inputs, weight_ih) + (extra_gates + bias).unsqueeze(1)
    else:
        input_gates = F.linear(inputs, weight_ih, bias)
    if state is None:
        zeros = inputs.new_zeros(input_gates.shape[0], lstm.hidden_size)
        state = (zeros, zeros)
    weight_hh = getattr(lstm, f"weight_hh_l{layer}")
    if torch.is_grad_enabled():
        return LSTMRecurrence.apply(input_gates, weight_hh, *state)
    return run_recurrence(input_gates, weight_hh, *state, keep_activations=False)


def library_lstm_layer(lstm: nn.LSTM, inputs: torch.Tensor, layer: int, state: tuple[torch.Tensor, torch.Tensor]):
    """Layer `layer` of `lstm` alone by the fused library kernel (`torch.lstm`, what `nn.LSTM` calls):
    `inputs (B, T, I)`, `state (h0, c0)` each `(B, H)` -> `hidden (B, T, H)` and the final `(h, c)`, each `(B, H)`."""
    weights = [getattr(lstm, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    hidden, h, c = torch.lstm(inputs, (state[0].unsqueeze(0), state[1].unsqueeze(0)), weights, True, 1, 0.0,
                              torch.is_grad_enabled(), False, True)  # biases, 1 layer, no dropout, (train), 1 way
    return hidden, (h[0], c[0])


def lstm_with_cell_states(lstm: nn.LSTM, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-layer, zero-initialised `nn.LSTM` on `inputs (B, T, I)`: `hidden, cell`, each `(B, T, H)`, by the
    stepwise or the library path ([`use_stepwise_lstm`])."""
    if use_stepwise_lstm(inputs):
        return lstm_layer(lstm, inputs)
    hidden, _ = lstm(inputs)
    return hidden, lstm_cell_states(lstm, inputs, hidden)


__all__ = [
    "LSTMRecurrence",
    "library_lstm_layer",
    "forced_lstm_path",
    "run_recurrence",
    "linear_recurrence",
    "lstm_cell_states",
    "lstm_layer",
    "lstm_with_cell_states",
    "use_stepwise_lstm",
]
