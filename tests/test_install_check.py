"""The set-up's last step: every spine_d2 module and the lazily loaded libraries import."""
from spine_d2 import install_check


def test_the_check_names_every_module_of_the_package_but_no_main():
    names = install_check.module_names()
    assert {"spine_d2.engine.run", "spine_d2.measure.pipeline", "spine_d2.synthetic.generate",
            "spine_d2.serve.app"} <= set(names)
    assert not [n for n in names if n.endswith("__main__")]
    assert set(install_check.LAZY) <= set(names)


def test_a_module_that_does_not_import_fails_the_check_with_its_name(monkeypatch, capsys):
    monkeypatch.setattr(install_check, "LAZY", install_check.LAZY + ("spine_d2_no_such_library",))
    assert install_check.main() == 1
    err = capsys.readouterr().err
    assert "spine_d2_no_such_library: ModuleNotFoundError" in err
    assert err.count("\n  ") == 1  # only the missing one: everything installed imports


def test_an_installed_environment_passes(capsys):
    assert install_check.main() == 0
    assert "spine_d2 ready: torch" in capsys.readouterr().out
