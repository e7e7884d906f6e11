"""See what fastai's fine_tune does to every layer of a pretrained network: sliders, figures, words.

Modules:

- `finetune_lab.experiment`: One `Config` holds every knob; `run` builds the data and the learner, trains with fastai's own methods, and returns what the tracker saw.
- `finetune_lab.lab`: Sliders, a Run and a Stop button, and the figures: an ipywidgets panel that trains in the background and shows what every layer did."""

__version__ = "0.0.1"
