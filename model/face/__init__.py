"""model/face/: find faces (detection.py), align them on the FFHQ template (alignment.py) and paste the
restored crops back into the photo (paste.py). Used through `model.restorer.Restorer`."""
