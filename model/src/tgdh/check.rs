//! Stateright model of TGDH (in progress).
