class FlywheelInputError(ValueError):
    """Bad input (mapping file, snapshot, parameter): the message says what and where.

    Raised before anything is written, so published data is never touched by it.
    """
