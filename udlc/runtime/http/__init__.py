"""`udlc serve`: exported files answered over HTTP (the Open Inference Protocol and a friendly route per served
kind) through the same torch-free readers `udlc predict` uses. app.py builds the app and runs it; oip.py and
friendly.py read requests and write answers; batching.py runs concurrent requests as one onnxruntime call;
limits.py bounds every request; models.py opens and names the files."""
