"""Default judge prompts. Placeholders: {prompt} and {explanation}; write literal braces as {{ }}.

The wording is ours. The `unified` template keeps the structure UnifiedReward-qwen
was trained on (CodeGoat24/UnifiedReward, inference_qwen/image_generation/
qwen_point_score_image_generation.py): alignment with the caption plus overall
quality, a list of the caption's elements marked 0/1, a 1-5 score after
"Final Score:", and the caption in brackets after "Text Caption:". For the
upstream text verbatim, set MILR_UNIFIED_TEMPLATE.
"""

UNIFIED = (
    "You are given a text caption and an image generated from it. Judge the image on two criteria:\n"
    "1. Alignment with the caption: are the objects, their attributes and their relations as the caption "
    "describes them?\n"
    "2. Overall image quality: clarity, detail, colour accuracy and aesthetic appeal.\n"
    "List the key elements of the caption and whether each appears in the image, one per line as "
    "'element (type): value' (value 1 = generated, 0 = not generated), then give a score from 1 to 5 "
    "after 'Final Score:'.\n"
    "The task:\n"
    "Text Caption: [{prompt}]"
)
UNIFIED_SCALE = (1.0, 5.0)

GPT4O = (
    "You are judging how faithfully a generated image depicts its text prompt.\n"
    "Prompt: {prompt}\n"
    "Check every object, its count, colour and other attributes, and every spatial relation the prompt "
    "names. An object that is missing, a wrong count, a wrong colour or a wrong relation are serious faults; "
    "image quality matters only where it hides what the prompt asks for.\n"
    "Reply with at most three sentences of justification, then a last line 'Score: N', where N is an "
    "integer from 0 (the image does not match the prompt at all) to 10 (every element matches exactly)."
)
GPT4O_SCALE = (0.0, 10.0)

WISE_SYSTEM = "You are an extremely strict auditor of generated images for a world-knowledge benchmark."

WISE = (
    "A text-to-image model was given the prompt below. The prompt asks for something that needs world "
    "knowledge; the explanation says what a correct image must show.\n"
    "PROMPT: {prompt}\n"
    "EXPLANATION: {explanation}\n"
    "Score the image on three criteria, each an integer 0, 1 or 2. Be extremely strict: 2 is rare and "
    "only for flawless work; when in doubt give the lower score.\n"
    "- Consistency: does the image show exactly what the prompt and the explanation require? "
    "0 = wrong or missing, 1 = partly right, 2 = fully right.\n"
    "- Realism: is it physically and visually plausible? 0 = clearly implausible, 1 = some flaws, "
    "2 = photorealistic or fully convincing.\n"
    "- Aesthetic Quality: composition, colour and detail. 0 = poor, 1 = acceptable, 2 = excellent.\n"
    "Give a short justification, then end with exactly these three lines:\n"
    "Consistency: <0|1|2>\n"
    "Realism: <0|1|2>\n"
    "Aesthetic Quality: <0|1|2>"
)
#: what {explanation} becomes when the record has none
NO_EXPLANATION = "(none given: judge against the prompt alone)"
