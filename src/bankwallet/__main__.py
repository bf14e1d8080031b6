from bankwallet.cli import app

app(prog_name="bankwallet")
