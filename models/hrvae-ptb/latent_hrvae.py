"""Latent distributions of the HR-VAE family: the diagonal Gaussian and the von Mises-Fisher (vMF) posterior.

Only torch here (the file travels with saved models for `trust_remote_code`). Shapes: `mu (..., D)`; `z (..., D)`.
"""

import math

import torch

LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- Gaussian posterior, N(0, I) prior
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last dimension: `(..., D) -> (...)`."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The same, per dimension: `(..., D) -> (..., D)`."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_log_density(z, mu, logvar):
    """log N(z; mu, exp(logvar)) summed over D: `z (B, K, D)`, `mu, logvar (B, D) -> (B, K)`."""
    return -0.5 * ((z - mu.unsqueeze(1)).pow(2) / logvar.exp().unsqueeze(1) + logvar.unsqueeze(1) + LOG_2PI).sum(-1)


def standard_normal_log_density(z):
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def gaussian_pairwise_log_density(z, mu, logvar):
    """log N(z_i; mu_j, var_j) for all pairs, as matmuls: `z (N, D)`, `mu, logvar (M, D) -> (N, M)`."""
    precision = torch.exp(-logvar)
    quadratic = z.pow(2) @ precision.T - 2 * z @ (mu * precision).T + (mu.pow(2) * precision).sum(1)
    return -0.5 * (quadratic + logvar.sum(1) + mu.shape[1] * LOG_2PI)


# ----------------------------------------------------------------------------- vMF posterior, uniform prior
def log_bessel_iv(order: float, x: float) -> float:
    """log I_order(x) for order >= 0, x > 0, stable for large order and x (float64 series summed in log space).

    I_v(x) = sum_k (x/2)^(2k+v) / (k! Gamma(k+v+1)); the terms peak near k* <= x/2 and are summed well past it.
    """
    if x <= 0:
        raise ValueError(f"log_bessel_iv needs x > 0, got {x}.")
    terms = int(x / 2 + 12 * math.sqrt(x / 2 + 1) + 60)
    k = torch.arange(terms, dtype=torch.float64, device="cpu")  # also under from_pretrained's meta-device init
    log_terms = (2 * k + order) * math.log(x / 2) - torch.lgamma(k + 1) - torch.lgamma(k + order + 1)
    return torch.logsumexp(log_terms, dim=0).item()


def log_sphere_area(dim: int) -> float:
    """log of the surface area of the unit sphere S^(dim-1) in R^dim: log(2 pi^(dim/2) / Gamma(dim/2))."""
    return math.log(2) + dim / 2 * math.log(math.pi) - math.lgamma(dim / 2)


def vmf_log_normalizer(dim: int, kappa: float) -> float:
    """log C_dim(kappa), the vMF density being C exp(kappa mu^T z) on the sphere."""
    return (dim / 2 - 1) * math.log(kappa) - dim / 2 * LOG_2PI - log_bessel_iv(dim / 2 - 1, kappa)


def vmf_mean_length(dim: int, kappa: float) -> float:
    """A_dim(kappa) = I_{dim/2}(kappa) / I_{dim/2-1}(kappa) = E[mu^T z]."""
    return math.exp(log_bessel_iv(dim / 2, kappa) - log_bessel_iv(dim / 2 - 1, kappa))


def vmf_kl(dim: int, kappa: float) -> float:
    """KL(vMF(mu, kappa) || Uniform(S^(dim-1))): a constant, `kappa A + log C + log area`."""
    return kappa * vmf_mean_length(dim, kappa) + vmf_log_normalizer(dim, kappa) + log_sphere_area(dim)


def wood_sample_w(dim: int, kappa: float, count: int, generator=None) -> torch.Tensor:
    """w = mu^T z for `count` vMF(mu, kappa) samples on S^(dim-1), by Wood's (1994) rejection sampler (float64).

    The Beta((dim-1)/2, (dim-1)/2) proposal is drawn as S1 / (S1 + S2), S1 and S2 sums of dim-1 squared standard
    normals (Gamma((dim-1)/2) = chi^2_(dim-1) / 2), so that every draw comes from `generator`.
    """
    m = dim - 1
    root = math.sqrt(4 * kappa**2 + m**2)
    b = m / (2 * kappa + root)  # = (root - 2 kappa) / m without the cancellation for large kappa
    a = (m + 2 * kappa + root) / 4
    d = 4 * a * b / (1 + b) - m * math.log(m)
    out = torch.empty(count, dtype=torch.float64)
    todo = torch.arange(count)
    while todo.numel():
        sums = torch.randn(todo.numel(), 2, m, generator=generator, dtype=torch.float64).pow(2).sum(-1)
        eps = sums[:, 0] / sums.sum(1)
        w = (1 - (1 + b) * eps) / (1 - (1 - b) * eps)
        t = 2 * a * b / (1 - (1 - b) * eps)
        u = torch.rand(todo.numel(), generator=generator, dtype=torch.float64)
        accept = m * torch.log(t) - t + d >= torch.log(u)
        out[todo[accept]] = w[accept]
        todo = todo[~accept]
    return out


def vmf_sample(direction: torch.Tensor, kappa: float, num_samples: int, generator=None) -> torch.Tensor:
    """`num_samples` draws of vMF(direction / |direction|, kappa): `(B, D) -> (B, num_samples, D)`.

    z = w mu + sqrt(1 - w^2) v with w from Wood's sampler and v uniform on the unit sphere of the tangent space
    of mu; differentiable with respect to `direction` (kappa is fixed, so w does not depend on it).
    """
    batch, dim = direction.shape
    mean = torch.nn.functional.normalize(direction, dim=-1).unsqueeze(1)  # (B, 1, D)
    w = wood_sample_w(dim, kappa, batch * num_samples, generator).view(batch, num_samples, 1)
    w = w.to(device=direction.device, dtype=direction.dtype)
    noise = torch.randn(batch, num_samples, dim, generator=generator, dtype=torch.float64)
    noise = noise.to(device=direction.device, dtype=direction.dtype)
    tangent = noise - (noise * mean).sum(-1, keepdim=True) * mean
    tangent = torch.nn.functional.normalize(tangent, dim=-1)
    return w * mean + torch.sqrt((1 - w.pow(2)).clamp(min=0)) * tangent


def vmf_log_density(z, direction, kappa: float):
    """log vMF(z; direction / |direction|, kappa): `z (B, K, D)`, `direction (B, D) -> (B, K)`."""
    mean = torch.nn.functional.normalize(direction, dim=-1).unsqueeze(1)
    return vmf_log_normalizer(direction.shape[-1], kappa) + kappa * (z * mean).sum(-1)


def uniform_sphere_log_density(z):
    return torch.full(z.shape[:-1], -log_sphere_area(z.shape[-1]), dtype=z.dtype, device=z.device)


def vmf_pairwise_log_density(z, direction, kappa: float):
    """log vMF(z_i; mu_j, kappa) for all pairs: `z (N, D)`, `direction (M, D) -> (N, M)`."""
    mean = torch.nn.functional.normalize(direction, dim=-1)
    return vmf_log_normalizer(direction.shape[-1], kappa) + kappa * z @ mean.T



# ----------------------------------------------------------------------------- the two distributions as objects
class GaussianLatent:
    """Diagonal Gaussian posterior N(mu, exp(logvar)), prior N(0, I): what [`HRVAEModel`] asks of its latent.

    Every method takes the encoder's `mu (B, D)` and `logvar (B, D)` (None for distributions without one)."""

    has_variance = True  # the encoder has a log-variance head, and a KL per step (HR-VAE's holistic term) exists

    def __init__(self, dim: int):
        self.dim = dim

    def kl(self, mu, logvar) -> torch.Tensor:
        """KL(q(z | x) || p(z)) `(B,)`, in fp32 (exp(logvar) - 1 - logvar cancels near the prior in bf16)."""
        return gaussian_kl(mu.float(), logvar.float())

    def sample(self, mu, logvar, num_samples: int = 1, generators=None) -> torch.Tensor:
        """`(B, D) -> (B, num_samples, D)`; row b drawn from `generators[b]` when given (reproducible per row)."""
        if generators is None:
            noise = torch.randn(mu.shape[0], num_samples, mu.shape[1], device=mu.device, dtype=mu.dtype)
        else:
            noise = torch.stack([torch.randn(num_samples, mu.shape[1], generator=g) for g in generators])
            noise = noise.to(device=mu.device, dtype=mu.dtype)
        return mu.unsqueeze(1) + noise * torch.exp(0.5 * logvar).unsqueeze(1)

    def log_density(self, z, mu, logvar) -> torch.Tensor:
        """log q(z | x): `z (B, K, D) -> (B, K)`."""
        return gaussian_log_density(z, mu, logvar)

    def pairwise_log_density(self, z, mu, logvar) -> torch.Tensor:
        """log q(z_i | x_j) for all pairs: `z (N, D)`, `mu (M, D) -> (N, M)`."""
        return gaussian_pairwise_log_density(z, mu, logvar)

    def prior_log_density(self, z) -> torch.Tensor:
        return standard_normal_log_density(z)

    def mean(self, mu, logvar) -> torch.Tensor:
        """E_q[z] (for active units)."""
        return mu

    def mode(self, mu, logvar) -> torch.Tensor:
        """The point decoded in evaluation and reconstruction."""
        return mu

    def sample_prior(self, count: int, device=None, dtype=None) -> torch.Tensor:
        return torch.randn(count, self.dim, device=device, dtype=dtype)


class VMFLatent:
    """vMF(mu / |mu|, kappa) posterior with a fixed `kappa`, uniform prior on the unit sphere (vMF-VAE). Its KL is
    a constant of kappa and D; it has no variance head (`logvar` is None everywhere)."""

    has_variance = False

    def __init__(self, dim: int, kappa: float):
        self.dim, self.kappa = dim, kappa
        self.constant_kl = vmf_kl(dim, kappa)

    def kl(self, mu, logvar=None) -> torch.Tensor:
        return mu.new_full(mu.shape[:1], self.constant_kl, dtype=torch.float32)

    def sample(self, mu, logvar=None, num_samples: int = 1, generators=None) -> torch.Tensor:
        if generators is None:
            return vmf_sample(mu, self.kappa, num_samples)
        return torch.cat([vmf_sample(mu[i : i + 1], self.kappa, num_samples, g) for i, g in enumerate(generators)])

    def log_density(self, z, mu, logvar=None) -> torch.Tensor:
        return vmf_log_density(z, mu, self.kappa)

    def pairwise_log_density(self, z, mu, logvar=None) -> torch.Tensor:
        return vmf_pairwise_log_density(z, mu, self.kappa)

    def prior_log_density(self, z) -> torch.Tensor:
        return uniform_sphere_log_density(z)

    def mean(self, mu, logvar=None) -> torch.Tensor:
        """E_q[z] = A_D(kappa) mu / |mu|."""
        return torch.nn.functional.normalize(mu, dim=-1) * vmf_mean_length(self.dim, self.kappa)

    def mode(self, mu, logvar=None) -> torch.Tensor:
        """The mean direction."""
        return torch.nn.functional.normalize(mu, dim=-1)

    def sample_prior(self, count: int, device=None, dtype=None) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(count, self.dim, device=device, dtype=dtype), dim=-1)


def latent_distribution(config) -> GaussianLatent | VMFLatent:
    """The latent distribution a configuration asks for (`config.latent_distribution`)."""
    if config.latent_distribution == "vmf":
        return VMFLatent(config.latent_dim, config.vmf_kappa)
    return GaussianLatent(config.latent_dim)


# ----------------------------------------------------------------------------- KL annealing (Bowman et al. 2016)
def kl_annealing_weight(schedule: str, step: int, anneal_steps: int, k: float, x0: int, cycle_length: int,
                        cycle_ratio: float) -> float:
    """The weight of the KL term at optimizer step `step` (0-based).

    none: 1; linear: min(1, step / anneal_steps); sigmoid: 1 / (1 + exp(-k (step - x0))) (Sentence-VAE: k=0.0025,
    x0=2500); cyclical (Fu et al. 2019): within each cycle of `cycle_length` steps, rises linearly from 0 to 1 over
    the first `cycle_ratio` of it, then stays at 1.
    """
    if schedule == "none":
        return 1.0
    if schedule == "linear":
        return min(1.0, step / anneal_steps)
    if schedule == "sigmoid":
        return float(1 / (1 + math.exp(-k * (step - x0))))
    if schedule == "cyclical":
        position = (step % cycle_length) / cycle_length
        return min(1.0, position / cycle_ratio)
    raise ValueError(f"Unknown KL annealing schedule {schedule!r}.")
