from sidrec.cli.main import entry

entry()
