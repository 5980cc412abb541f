"""Every registered model at a tiny size (data spec, ``--set`` overrides): for tests that run each
model's real ``training_step`` a few times (the CUDA-graph contract on CPU, graphed vs eager on a
GPU). Every registered model must have an entry (``test_every_model_has_a_tiny_config``)."""

PHOTOS = "photo-{}16?sources=sklearn&limit=32"
_GAN = ["batch_size=4", "width=8"]
_VAE = ["batch_size=4", "width=8", "z_dim=8"]
_ACL = ["batch_size=4", "width=8", "acl_hidden=16"]
_EDGAN = ["batch_size=2", "width=8", "z_dim=8"]
_UNET = ["batch_size=2", "width=8", "d_width=8"]
_COGAN = ["batch_size=4", "g_width=32", "d_width=8", "z_dim=8"]

TINY: dict[str, tuple[str, list[str]]] = {
    "acl-ae": ("digits16", ["batch_size=4", "acl_hidden=16", "ae_hidden=32"]),
    "acl-gan": ("digits16", _ACL),
    "acl-gan-gp": ("digits16", [*_ACL, "n_critic=2"]),
    "acl-sgan": ("digits16", _ACL),
    "cidvae": ("digits16", _VAE),
    "cogan": ("digits16-edge", _COGAN),
    "dcgan": ("digits16", _GAN),
    "edgan": (PHOTOS.format("blur"), _EDGAN),
    "edgan-caae": ("digits16", _EDGAN),
    "edgan-caae-coupled": ("digits16", _EDGAN),
    "edgan-coupled": (PHOTOS.format("blur"), _EDGAN),
    "edgan-pix2pix": (PHOTOS.format("blur"), ["batch_size=2", "width=8", "d_width=8"]),
    "edgan-pix2pix-coupled": (PHOTOS.format("blur"), ["batch_size=2", "width=8", "d_width=8"]),
    "idvae": ("digits16", _VAE),
    "idvae-r": ("digits16", _VAE),
    "pix2pix": (PHOTOS.format("edges"), _UNET),
    "scogan": ("digits16-edge", [*_COGAN, "n_critic=2", "regularizers=fr,cc", "enc_width=8"]),
    "unet-vae-gan": (PHOTOS.format("edges"), _UNET),
    "uunet": (PHOTOS.format("edges"), _UNET),
    "uuvae-gan": (PHOTOS.format("edges"), [*_UNET, "kl_fake_ramp=3"]),
    "vae": ("digits16", _VAE),
    "vae-gan": ("digits16", _VAE),
    "wgan-gp": ("digits16", [*_GAN, "n_critic=2"]),
}

# Variants whose host code differs from the defaults' (lazy regularisation: one graph per phase).
TINY_VARIANTS: dict[str, tuple[str, str, list[str]]] = {
    "wgan-gp-lazy": ("wgan-gp", "digits16", [*_GAN, "n_critic=2", "gp_every=3"]),
    "acl-gan-gp-lazy": ("acl-gan-gp", "digits16", [*_ACL, "n_critic=2", "gp_every=4"]),
    "cogan-wgan-lazy": ("cogan", "digits16-edge", [*_COGAN, "loss=wgan-gp", "n_critic=2", "gp_every=3"]),
    "uunet-adversarial": ("uunet", PHOTOS.format("edges"), [*_UNET, "g_in_d_step=adversarial"]),
}


def all_cases() -> dict[str, tuple[str, str, list[str]]]:
    """case id -> (model, data spec, overrides): every model at its tiny size, plus the variants."""
    return {**{m: (m, d, o) for m, (d, o) in TINY.items()}, **TINY_VARIANTS}
