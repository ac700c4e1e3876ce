import numpy as np
import pytest

from jtm.demo import ensembles
from jtm.musicnet.layout import INSTRUMENTS

pytestmark = pytest.mark.check  # the contributor tier: make check


def test_ensembles_use_only_musicnet_instruments():
    assert len(ensembles.ENSEMBLES) == 21
    used = {p for programs in ensembles.ENSEMBLES.values() for p in programs}
    assert used == set(INSTRUMENTS) == set(ensembles.RANGES)


def test_four_parts_fit_quartets_and_keyboard_ensembles_but_not_quintets():
    fitting = set(ensembles.fitting_ensembles(4))
    assert {"String Quartet", "Solo Piano", "Piano Trio", "Accompanied Violin", "Piano Quartet"} <= fitting
    assert not {"Wind Quintet", "String Sextet", "Solo Violin", "Piano Quintet"} & fitting


def test_assignment_follows_ranges():
    soprano, alto, tenor, bass = (
        np.array([72, 74, 76]),
        np.array([64, 65]),
        np.array([55, 57]),
        np.array([40, 43]),
    )
    programs = ensembles.assign_parts("String Quartet", [soprano, alto, tenor, bass])
    assert programs[3] == ensembles.CELLO and programs[2] == ensembles.VIOLA
    trio = ensembles.assign_parts("Piano Trio", [soprano, alto, tenor, bass])
    assert trio[0] == ensembles.VIOLIN and trio[3] == ensembles.CELLO
    assert trio[1] == trio[2] == ensembles.PIANO


def test_assign_refuses_an_ensemble_that_does_not_fit():
    with pytest.raises(ValueError):
        ensembles.assign_parts("Wind Quintet", [np.array([60])] * 4)


@pytest.mark.parametrize("program", sorted(ensembles.RANGES))
def test_fit_to_range_keeps_every_note_playable(program):
    pitches = np.array([20, 35, 50, 60, 72, 90, 110])
    low, high = ensembles.RANGES[program]
    fitted = ensembles.fit_to_range(pitches, program)
    assert fitted.min() >= low and fitted.max() <= high
    assert np.all((fitted - pitches) % 12 == 0)  # octave moves only: pitch classes kept


def test_names_map_to_programs():
    assert ensembles.program_from_name("Violoncello") == ensembles.CELLO
    assert ensembles.program_from_name("Violin II") == ensembles.VIOLIN
    assert ensembles.program_from_name("Soprano") is None
    assert ensembles.ensemble_of([41, 41, 42, 43]) == "String Quartet"
    assert ensembles.ensemble_of([41, 1, 1]) == "Accompanied Violin"
