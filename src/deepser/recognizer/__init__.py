"""Speech emotion recognition with a model bundle, on files or a live microphone.

- :mod:`~deepser.recognizer.vad`: :class:`StreamingSegmenter` (WebRTC VAD, incremental segments)
- :mod:`~deepser.recognizer.engine`: :class:`Engine` (segment -> workflow features -> prediction)
- :mod:`~deepser.recognizer.pipeline`: :class:`Recognizer` (chunks -> predictions)
- :mod:`~deepser.recognizer.gain`: bundle / fixed / auto (running calibration) gain
- :mod:`~deepser.recognizer.sources`: file and microphone (PyAudio) sources
- :mod:`~deepser.recognizer.output`: CSV / JSON lines timelines
- :mod:`~deepser.recognizer.session`: a run over files or a microphone, writing timelines
  (the ``deepser recognize`` command, :mod:`deepser.cli.recognize`, calls it)

Example::

    from deepser.recognizer import Engine, Recognizer
    from deepser.recognizer.sources import FileSource

    engine = Engine.from_bundle("results/experiments/demo/final")
    for pred in Recognizer(engine).stream(FileSource("talk.wav", engine.sample_rate)):
        print(pred.segment.start_s, pred.segment.end_s, pred.outputs)
"""

from deepser.errors import RecognizerError
from deepser.recognizer.engine import Engine, Prediction
from deepser.recognizer.pipeline import Recognizer
from deepser.recognizer.vad import Segment, StreamingSegmenter, VadSettings

__all__ = [
    "Engine",
    "Prediction",
    "Recognizer",
    "RecognizerError",
    "Segment",
    "StreamingSegmenter",
    "VadSettings",
]
