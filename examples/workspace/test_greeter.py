import greeter


def test_greet():
    assert greeter.greet('Ada') == 'Hello, Ada!'


def test_farewell():
    assert greeter.farewell('Ada') == 'Goodbye, Ada!'
