import sys

from alimi.process import main
from alimi_intake.app import IntakeProcess
from alimi_intake.settings import IntakeSettings

sys.exit(main("intake", IntakeSettings, IntakeProcess))
