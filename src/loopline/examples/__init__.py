"""Example projects shipped with loopline (run by ``loopline demo``)."""
