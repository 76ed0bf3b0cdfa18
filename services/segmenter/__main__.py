import sys

from alimi.process import main
from alimi_segmenter.app import build
from alimi_segmenter.settings import SegmenterSettings

sys.exit(main("segmenter", SegmenterSettings, build))
