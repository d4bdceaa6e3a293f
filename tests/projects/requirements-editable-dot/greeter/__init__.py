import colorama


def greet(name, colour=False):
    text = f"Hello, {name}!"
    return colorama.Fore.GREEN + text + colorama.Style.RESET_ALL if colour else text
