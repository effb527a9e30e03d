"""qadapt in the tools researchers already use: an lm-evaluation-harness model (:mod:`.harness`) and the export of a
trained adapter as a peft adapter or as merged transformers weights (:mod:`.export`)."""
