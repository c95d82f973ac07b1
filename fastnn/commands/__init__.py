"""One module per `fastnn` sub-command: configure(parser) and run(args) -> exit status."""
