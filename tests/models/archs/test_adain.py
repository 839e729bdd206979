import torch

from models.archs.adain import adain, channel_stats, style_vector


def test_adain_output_has_exactly_the_target_statistics():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(4, 512, 16, 16, generator=g) * 3 + 1
    mean = torch.randn(4, 512, generator=g)
    std = torch.rand(4, 512, generator=g) * 2 + 0.1
    out = adain(content, mean, std)
    got_mean, got_std = channel_stats(out, eps=0)
    assert torch.allclose(got_mean, mean, atol=1e-4)
    assert torch.allclose(got_std, std, rtol=1e-3, atol=1e-4)
    # and the spatial pattern of every channel is the content's, only rescaled
    corr = torch.nn.functional.cosine_similarity(
        (out - got_mean[..., None, None]).flatten(2),
        (content - content.mean((2, 3), True)).flatten(2),
        dim=2,
    )
    assert (corr > 0.9999).all()


def test_style_vector_is_means_then_deviations():
    x = torch.zeros(1, 2, 4, 4)
    x[0, 0] = 3.0
    x[0, 1, :2] = 1.0
    x[0, 1, 2:] = -1.0
    v = style_vector(x)
    assert v.shape == (1, 4)
    assert torch.allclose(v, torch.tensor([[3.0, 0.0, 0.0031623, 1.0]]), atol=1e-4)
