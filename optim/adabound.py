"""AdaBound (Luo et al., ICLR 2019): Adam whose step size is clipped into bounds that converge to SGD's."""
import math
from typing import Iterable, Sequence

import torch

from optim.registry import OPTIMIZERS


@OPTIMIZERS.register("AdaBound")
class AdaBound(torch.optim.Optimizer):
    """Adam with dynamic bounds on the per-parameter learning rate, converging to `final_lr`."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.999),
                 final_lr: float = 0.1, gamma: float = 1e-3, eps: float = 1e-8, weight_decay: float = 0,
                 amsbound: bool = False) -> None:
        if lr <= 0.0:
            raise ValueError(f"AdaBound: lr must be positive, got {lr}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"AdaBound: betas must lie in [0, 1), got {tuple(betas)}")
        defaults = dict(lr=lr, betas=tuple(betas), final_lr=final_lr, gamma=gamma, eps=eps,
                        weight_decay=weight_decay, amsbound=amsbound)
        super().__init__(params, defaults)
        self.base_lrs = [group["lr"] for group in self.param_groups]

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 -- torch.optim signature
        """Perform one optimisation step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, base_lr in zip(self.param_groups, self.base_lrs):
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsbound"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if group["amsbound"]:
                    torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
                    denom = state["max_exp_avg_sq"].sqrt().add_(group["eps"])
                else:
                    denom = exp_avg_sq.sqrt().add_(group["eps"])
                step = state["step"]
                step_size = group["lr"] * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
                # The bounds scale with the group's current lr so that LR schedules act on them too.
                final_lr = group["final_lr"] * group["lr"] / base_lr
                lower = final_lr * (1 - 1 / (group["gamma"] * step + 1))
                upper = final_lr * (1 + 1 / (group["gamma"] * step))
                step_sizes = torch.full_like(denom, step_size).div_(denom).clamp_(lower, upper).mul_(exp_avg)
                p.sub_(step_sizes)
        return loss
