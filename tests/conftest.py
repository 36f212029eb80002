import pytest

# special tokens of the tiny Qwen2.5-VL judge (tiny_judge)
JUDGE_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>", "[UNK]"]


@pytest.fixture(scope="session")
def tiny_janus_dir(tmp_path_factory):
    """A random-weight Janus checkpoint directory (see milr_janus.tiny), built once per session."""
    # Imported here so that test modules which need no Janus run without the plugin installed.
    from milr_janus.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-janus"))


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory):
    """A Qwen2.5-VL checkpoint with random weights and a word-level vocabulary without digits,
    so that whatever it answers holds no score."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                              Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    words = "a the image photo of red blue green cube ball shows is not and with".split()
    vocab = {t: i for i, t in enumerate(JUDGE_SPECIAL + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }} {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}"
                "{% endif %}{% endfor %}<|im_end|> {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant {% endif %}")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="[UNK]")
    fast.add_special_tokens({"additional_special_tokens": JUDGE_SPECIAL[1:7]})  # matched whole, before splitting
    ids = {t: vocab[t] for t in JUDGE_SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"],
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[0], window_size=56),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("judge") / "tiny-unified"
    Qwen2_5_VLForConditionalGeneration(config).eval().save_pretrained(path)
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56),
                                    video_processor=Qwen2VLVideoProcessor(), tokenizer=fast, chat_template=template)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bagel_dir(tmp_path_factory):
    """A random-weight BAGEL checkpoint folder in the published layout (see milr_bagel.tiny), built once per session."""
    from milr_bagel.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-bagel"))
